"""Reads of notifications, always for one owner."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from django.db.models import QuerySet

from notifications.models import Notification
from notifications.present import present_rows
from notifications.services import grace_seconds


def list_changed_since(*, owner_id: int, since: float) -> QuerySet[Notification]:
    """Return the owner's rows whose timestamp is after ``since`` (exact owner id match)."""
    return Notification.objects.filter(owner_id=owner_id, timestamp__gt=since).order_by("name")


def poll_items(*, owner_id: int, since: float, now: datetime, language: str, tz: tzinfo) -> list[dict[str, Any]]:
    """Return ``[{name, data, timestamp}]`` of the owner's rows changed after ``since``, for a reader.

    The page's poll view and the API call this one function, so both answer the same payload:
    reservation entries get ``remaining_seconds``/``remaining_text`` computed from ``now``.
    """
    rows = list_changed_since(owner_id=owner_id, since=since)
    return present_rows(rows, now=now, language=language, tz=tz, grace_seconds=grace_seconds())
