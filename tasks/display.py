"""How pages show what a task stores: a bounded, safe preview of its context, its log in the reader's zone.

Rows written before the input limits (tasks.validation) may hold a context nested hundreds of
levels deep or megabytes long; decoding one with the json module (which recurses) can raise
RecursionError. Pages therefore read the context as its stored JSON text (selectors) and show it
through ``preview_json``, which decodes only text it has measured as shallow and short.
"""

from __future__ import annotations

import json
import re
from datetime import datetime

from django.utils import timezone

from tasks.logfields import LOG_STAMP

PREVIEW_CHARS = 2000  # shown at most; the rest is cut with a note
PREVIEW_PARSE_CHARS = 64 * 1024  # longer stored text is shown as it is, not decoded
PREVIEW_PARSE_DEPTH = 16  # deeper stored text is shown as it is, not decoded

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def text_depth(text: str) -> int:
    """How deeply ``[`` and ``{`` nest in JSON text (outside strings), counted without recursion."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def shallow(text: str) -> bool:
    """Whether ``[`` and ``{`` nest at most PREVIEW_PARSE_DEPTH deep in JSON text ``text``.

    Text with no more brackets than that (most contexts) cannot nest deeper, and skips the scan:
    a worker reads the stored context of every task it claims.
    """
    return text.count("[") + text.count("{") <= PREVIEW_PARSE_DEPTH or text_depth(text) <= PREVIEW_PARSE_DEPTH


def preview_json(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    """Stored JSON text as indented JSON when it is shallow and short enough, else as stored; cut at ``limit``."""
    if not text:
        return ""
    shown = text
    if len(text) <= PREVIEW_PARSE_CHARS and shallow(text):
        try:
            shown = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            shown = text
    if len(shown) <= limit:
        return shown
    return f"{shown[:limit]}… (+{len(shown) - limit} characters)"


def read_stored(text: str | None) -> object:
    """Stored JSON text decoded when it is shallow enough to decode safely (any length), else None."""
    if not text or not shallow(text):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


_STAMPED = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}) ", re.M)


def log_in_zone(text: str) -> str:
    """A stored log (task or series) with each line's time stamp moved to the active time zone.

    Stored in UTC, as every time is; shown as the rest of the page shows times. A line that does
    not start with a stamp (or one that does not parse) is shown as stored.
    """

    def local(match: re.Match[str]) -> str:
        try:
            moment = datetime.strptime(match.group(1), LOG_STAMP)  # noqa: DTZ007 - LOG_STAMP ends in %z: aware
        except ValueError:
            return match.group(0)
        return timezone.localtime(moment).strftime(LOG_STAMP) + " "

    return _STAMPED.sub(local, text)
