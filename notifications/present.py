"""Shape notification rows for a reader: drop what they no longer need, add what depends on now.

Nothing here is stored: time left is computed when read, in the reader's language and zone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from notifications.models import Notification
from notifications.payload import MAX_ENTRIES, is_list_kind, prune_entries
from notifications.remaining import remaining_text, units_for


@lru_cache(maxsize=4 * MAX_ENTRIES)
def _due(raw: str, tz: tzinfo) -> tuple[datetime, str]:
    """Parse a stored ``reserved_at`` once: the instant, and its ISO text in the reader's zone ``tz``.

    Why cached: a page polls the same reservations again every few seconds, and parsing and
    re-formatting each one's time was the larger part of a poll of 1000 entries (measured).
    """
    reserved_at = datetime.fromisoformat(raw)
    return reserved_at, reserved_at.astimezone(tz).isoformat()


def present_reserve_entries(
    entries: Iterable[dict[str, Any]], *, now: datetime, language: str, tz: tzinfo
) -> list[dict[str, Any]]:
    """Add ``remaining_seconds`` and ``remaining_text`` to each entry; give ``reserved_at`` in the reader's zone."""
    units = units_for(language)
    presented = []
    for entry in entries:
        raw = entry.get("reserved_at")
        if not raw:
            presented.append({**entry, "remaining_seconds": None, "remaining_text": ""})
            continue
        reserved_at, local = _due(raw, tz)
        # Rounded up, so the count reaches 0 at the due time, not a second before it.
        remaining = math.ceil((reserved_at - now).total_seconds())
        presented.append(
            {
                **entry,
                "reserved_at": local,
                "remaining_seconds": remaining,
                "remaining_text": remaining_text(remaining, units),
            }
        )
    return presented


def _in_zone(entries: list[dict[str, Any]], tz: tzinfo) -> list[dict[str, Any]]:
    """The entries with ``reserved_at`` in the reader's zone, as task_reserve gives it (stored in UTC)."""
    return [
        {**entry, "reserved_at": _due(entry["reserved_at"], tz)[1]} if entry.get("reserved_at") else entry
        for entry in entries
    ]


def present_rows(
    rows: Iterable[Notification], *, now: datetime, language: str, tz: tzinfo, grace_seconds: float
) -> list[dict[str, Any]]:
    """Return ``[{name, data, timestamp}]``; list kinds without entries that ended over the grace ago."""
    items = []
    for row in rows:
        data = row.payload.get("data")
        if is_list_kind(row.name):
            data = prune_entries(list(data or []), now_ts=now.timestamp(), grace_seconds=grace_seconds)
            if row.name == "task_reserve":
                data = present_reserve_entries(data, now=now, language=language, tz=tz)  # type: ignore[arg-type]
            else:
                data = _in_zone(data, tz)  # type: ignore[arg-type]
        items.append({"name": row.name, "data": data, "timestamp": row.timestamp})
    return items
