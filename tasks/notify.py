"""What the task services tell the notifications app (through its service, never its models)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from notifications.services import merge_notification, merge_notifications
from series.selectors import repeats_of
from tasks.models import Task


def _entry(task: Task) -> dict:
    entry = {
        "task_id": task.pk,
        "status": task.status,
        "description": task.description,
        "progress": task.progress,
        "failed": task.failed,
        # In UTC whatever zone the door had; a poll gives it in the reader's (notifications.present).
        "reserved_at": task.reserved_at.astimezone(UTC).isoformat() if task.reserved_at else None,
    }
    if task.series_id is not None:  # an occurrence of a series: the panel labels it ("repeats weekly")
        entry["repeats"] = repeats_of(task.series_id)
    return entry


def notify_reserve(task: Task) -> None:
    """Merge the task's reservation entry into the owner's ``task_reserve`` list."""
    merge_notification(owner_id=task.owner_id, name="task_reserve", data=_entry(task))


def notify_progress(task: Task) -> None:
    """Merge the task's progress entry into the owner's ``task_progress`` list."""
    merge_notification(owner_id=task.owner_id, name="task_progress", data=_entry(task))


def notify_ended(task: Task) -> None:
    """Tell both lists that the task ended, so pages drop its countdown and its bar."""
    notify_progress(task)
    if task.reserved_at is not None:
        notify_reserve(task)


def notify_many(tasks: Iterable[Task], *, ended: bool = False) -> None:
    """Merge the entries of many tasks into their owners' lists in one bulk merge, not one per task.

    ``ended`` also updates the ``task_reserve`` list, as notify_ended does for one task.
    """
    by_owner: dict[int, list[Task]] = defaultdict(list)
    for task in tasks:
        by_owner[task.owner_id].append(task)
    changes: list[tuple[int, str, Any]] = []
    for owner_id, owned in by_owner.items():
        changes.append((owner_id, "task_progress", [_entry(task) for task in owned]))
        reserved = [_entry(task) for task in owned if task.reserved_at is not None]
        if ended and reserved:
            changes.append((owner_id, "task_reserve", reserved))
    merge_notifications(changes=changes)
