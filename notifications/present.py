"""Shape notification rows for a reader: drop what they no longer need, add what depends on now.

Nothing here is stored: time left is computed when read, in the reader's language and zone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, tzinfo
from typing import Any

from notifications.models import Notification
from notifications.payload import is_list_kind, prune_entries
from notifications.remaining import format_remaining


def present_reserve_entry(entry: dict[str, Any], *, now: datetime, language: str, tz: tzinfo) -> dict[str, Any]:
    """Add ``remaining_seconds`` and ``remaining_text``; give ``reserved_at`` in the reader's zone."""
    raw = entry.get("reserved_at")
    if not raw:
        return {**entry, "remaining_seconds": None, "remaining_text": ""}
    reserved_at = datetime.fromisoformat(raw).astimezone(tz)
    # Rounded up, so the count reaches 0 at the due time, not a second before it.
    remaining = math.ceil((reserved_at - now).total_seconds())
    return {
        **entry,
        "reserved_at": reserved_at.isoformat(),
        "remaining_seconds": remaining,
        "remaining_text": format_remaining(remaining, language),
    }


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
                data = [present_reserve_entry(e, now=now, language=language, tz=tz) for e in data]  # type: ignore[arg-type]
        items.append({"name": row.name, "data": data, "timestamp": row.timestamp})
    return items
