"""The fields a log line about a task carries (LOG_FORMAT=json turns them into JSON keys)."""

from __future__ import annotations

from tasks.models import Task

LOG_STAMP = "%Y-%m-%dT%H:%M:%S%z"  # how a task's or a series' log line starts: the moment it was written, in UTC


def task_fields(task: Task, transition: str) -> dict[str, object]:
    """Return ``extra=`` for a log call on a status change, e.g. ``transition="reserved->running"``."""
    return {"task_id": task.pk, "owner": task.owner_id, "queue": task.queue, "transition": transition}
