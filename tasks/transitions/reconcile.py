"""Transitions for work that went wrong unseen: a RUNNING task whose workers went silent
(recover), a reservation later than its grace (mark_missed). The reconciler calls both; a worker
that claims a reservation too late marks it missed too."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from tasks.models import Task
from tasks.notify import notify_ended, notify_progress
from tasks.transitions.table import S, _end_attempt, _move, _reload, _running, append_log

# One logger for the package, named as before the split: log records keep logger "tasks.transitions".
logger = logging.getLogger("tasks.transitions")


@transaction.atomic
def recover(*, task_id: int, attempt: int, beat: datetime | None, retry: bool, line: str, now: datetime) -> bool:
    """A RUNNING task whose workers went silent (heartbeat still ``beat``): -> QUEUED, or FINISHED + failed.

    Fenced by attempt and heartbeat, so a worker that beat meanwhile keeps its task. The open
    deliveries are given back, so the silent worker's next ownership check fails. Returns whether
    this call moved the task.
    """
    where = _running(task_id, attempt) & Q(heartbeat_at=beat)
    target, line = (S.QUEUED, f"{line}; retrying") if retry else (S.FINISHED, f"{line}; giving up")
    task = _end_attempt(task_id=task_id, where=where, target=target, line=line, now=now)
    if task is not None:
        (notify_progress if retry else notify_ended)(task)
    return task is not None


def mark_missed(*, task_id: int, now: datetime) -> bool:
    """RESERVED and later than MISSED_GRACE_MINUTES -> CANCELED + failed ("missed: ..."); the owner is told."""
    due = Task.objects.filter(pk=task_id).values_list("reserved_at", flat=True).first()
    if due is None:
        return False
    late = (now - due).total_seconds() / 60
    won = _move(
        sources=(S.RESERVED,),
        target=S.CANCELED,
        where=Q(pk=task_id),
        failed=True,
        ended_at=now,
        log=append_log(
            f"missed: due {due.isoformat()}, {late:.0f} min ago, later than the "
            f"{settings.MISSED_GRACE_MINUTES}-minute grace; not sent"
        ),
    )
    if won:
        logger.error("reservation missed task_id=%s due=%s late_minutes=%.0f", task_id, due.isoformat(), late)
        notify_ended(_reload(task_id))
    return bool(won)
