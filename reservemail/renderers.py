"""The API's JSON renderer: DRF's, with a fallback for text that UTF-8 cannot encode.

An error message may quote the input back ("“\\ud800” is not a valid choice."), and a JSON body
may carry a lone surrogate as an escape. DRF writes non-ASCII as UTF-8, which a lone surrogate
cannot be: a UnicodeEncodeError, a 500 in place of the 400. Such a body is written with
``\\u`` escapes instead, which is the same JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import JSONRenderer


class SafeJSONRenderer(JSONRenderer):
    """DRF's JSONRenderer; a body holding a lone surrogate is rendered ASCII-only with escapes."""

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return _AsciiJSONRenderer().render(data, accepted_media_type, renderer_context)


class _AsciiJSONRenderer(JSONRenderer):
    ensure_ascii = True
