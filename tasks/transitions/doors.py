"""Transitions the doors call through tasks.services: cancel a pending task, refuse one the queue
could not take, send a reservation now, edit or reschedule it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from django.db.models import Q

from tasks.logfields import task_fields
from tasks.models import Task
from tasks.notify import notify_ended, notify_reserve
from tasks.transitions.table import S, _allowed, _move, _reload, append_log

# One logger for the package, named as before the split: log records keep logger "tasks.transitions".
logger = logging.getLogger("tasks.transitions")


def cancel_pending(*, task_id: int, who: str, now: datetime) -> bool:
    """QUEUED or RESERVED -> CANCELED; False if the task was not pending (claimed, ended) any more."""
    prior = Task.objects.filter(pk=task_id).values_list("status", flat=True).first()
    won = _move(
        sources=(S.QUEUED, S.RESERVED),
        target=S.CANCELED,
        where=Q(pk=task_id),
        ended_at=now,
        log=append_log(f"canceled by {who}"),
    )
    if won:
        task = _reload(task_id)
        logger.info("task canceled task_id=%s by=%s", task_id, who, extra=task_fields(task, f"{prior}->canceled"))
        notify_ended(task)
    return bool(won)


def refuse(*, task_id: int, reason: str, now: datetime) -> bool:
    """QUEUED or RESERVED -> CANCELED + failed: the queue could not take the job, so the send is refused."""
    won = _move(
        sources=(S.QUEUED, S.RESERVED),
        target=S.CANCELED,
        where=Q(pk=task_id),
        failed=True,
        ended_at=now,
        log=append_log(f"queue unavailable, not sent: {reason}"),
    )
    if won:
        notify_ended(_reload(task_id))  # the page must not keep counting down to it
    return bool(won)


def send_now(*, task_id: int, queue: str) -> bool:
    """RESERVED -> QUEUED on ``queue``: sent at once instead of at its time."""
    won = _move(
        sources=(S.RESERVED,),
        target=S.QUEUED,
        where=Q(pk=task_id),
        queue=queue,
        log=append_log("sent now instead of at its time"),
    )
    if won:
        notify_reserve(_reload(task_id))
    return bool(won)


def edit_reserved(*, task_id: int, changes: Mapping[str, object], who: str) -> Task | None:
    """RESERVED -> RESERVED with ``changes`` (content, description, time); None if the task is not RESERVED.

    Lock, check, then one conditional update, in the caller's transaction: ordered in the database
    against the worker's claim (itself a conditional update from RESERVED). Either this commits
    first and the claim reads the edited row, or the claim commits first and this matches no row.
    ``changes`` maps Task fields (template, recipients, context, description, reserved_at) to values.
    """
    return _rewrite(task_id, changes, f"edited by {who}: {', '.join(sorted(changes)) or 'nothing'}")


def reschedule(*, task_id: int, scheduled_at: datetime) -> Task | None:
    """RESERVED -> RESERVED at ``scheduled_at`` (edit_reserved of the time alone); None if not RESERVED."""
    return _rewrite(task_id, {"reserved_at": scheduled_at}, "")


def _rewrite(task_id: int, changes: Mapping[str, object], line: str) -> Task | None:
    _allowed((S.RESERVED,), S.RESERVED)
    row = Task.objects.select_for_update().filter(pk=task_id).values_list("status", "reserved_at").first()
    if row is None or row[0] != S.RESERVED:
        return None
    old = row[1]
    due = changes.get("reserved_at")
    if isinstance(due, datetime) and due != old:
        moved = f"rescheduled from {old.isoformat() if old else '-'}"
        line = f"{line}; {moved}" if line else moved
    line = line or "rescheduled to the same time"
    if not _move(sources=(S.RESERVED,), target=S.RESERVED, where=Q(pk=task_id), log=append_log(line), **changes):
        return None  # cannot happen under the lock; refuse rather than guess
    task = _reload(task_id)
    notify_reserve(task)
    logger.info(
        "task changed task_id=%s fields=%s due=%s",
        task_id,
        ",".join(sorted(changes)),
        task.reserved_at.isoformat() if task.reserved_at else "-",
        extra=task_fields(task, "reserved->reserved"),
    )
    return task
