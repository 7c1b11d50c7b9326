"""Reads of notifications, always for one owner."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet
from django.utils import translation
from django.utils.dateparse import parse_datetime
from django.utils.timesince import timeuntil

from notifications.models import Notification


def list_changed_since(*, owner_id: int, since: float) -> QuerySet[Notification]:
    """Return the owner's rows whose timestamp is after ``since`` (exact owner id match)."""
    return Notification.objects.filter(owner_id=owner_id, timestamp__gt=since).order_by("name")


def _with_remaining(entry: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Add remaining_seconds/remaining_text to a pending reservation entry (computed when read)."""
    raw = entry.get("reserved_at")
    reserved_at = parse_datetime(raw) if isinstance(raw, str) else None
    if entry.get("status") != "reserved" or reserved_at is None or reserved_at.tzinfo is None:
        return entry
    seconds = max(0, math.ceil((reserved_at - now).total_seconds()))
    return {**entry, "remaining_seconds": seconds, "remaining_text": timeuntil(reserved_at, now, depth=2)}


def poll_items(owner: AbstractBaseUser, since: float, now: datetime, language: str) -> list[dict[str, Any]]:
    """Return ``[{name, data, timestamp}]`` of the owner's rows changed after ``since``.

    Entries of pending reservations get ``remaining_seconds`` and ``remaining_text`` (in
    ``language``), computed from ``now`` at read time; they are never stored.
    """
    items = []
    with translation.override(language):
        for row in list_changed_since(owner_id=owner.pk, since=since):
            data = row.payload.get("data")
            if isinstance(data, list):
                data = [_with_remaining(e, now) if isinstance(e, dict) else e for e in data]
            items.append({"name": row.name, "data": data, "timestamp": row.timestamp})
    return items
