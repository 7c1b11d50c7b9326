"""Reads of notifications, always for one owner."""

from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import Notification


def list_changed_since(*, owner_id: int, since: float) -> QuerySet[Notification]:
    """Return the owner's rows whose timestamp is after ``since`` (exact owner id match)."""
    return Notification.objects.filter(owner_id=owner_id, timestamp__gt=since).order_by("name")
