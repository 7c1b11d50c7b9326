"""The API's JSON parser: DRF's, made safe for any depth of input.

Python's json module raises RecursionError (not ValueError) on input nested about a thousand
levels deep, which DRF does not catch: a 500 with a traceback. And a body that parses at 900
levels still breaks whatever walks it next (idempotency fingerprint, serializers, the JSON
column). So a body is refused with 400 past MAX_BODY_DEPTH levels, far beyond what any valid
request needs (a context is at most 8 levels; see tasks.validation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_BODY_DEPTH = 32


def nesting_depth(value: object) -> int:
    """How deeply objects and lists nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in item if isinstance(child, dict | list))
    return deepest


class SafeJSONParser(JSONParser):
    """DRF's JSONParser (strict: no NaN or Infinity) that answers 400, never 500, for deep input."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {MAX_BODY_DEPTH} levels deep.") from None
        if nesting_depth(data) > MAX_BODY_DEPTH:
            raise ParseError(f"JSON parse error - nested more than {MAX_BODY_DEPTH} levels deep.")
        return data
