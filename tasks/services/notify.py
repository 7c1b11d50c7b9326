"""What the task services tell the notifications app (through its service, never its models)."""

from __future__ import annotations

from notifications.services import merge_notification
from tasks.models import Task


def _entry(task: Task) -> dict:
    return {
        "task_id": task.pk,
        "status": task.status,
        "description": task.description,
        "progress": task.progress,
        "failed": task.failed,
        "reserved_at": task.reserved_at.isoformat() if task.reserved_at else None,
    }


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
