"""Ends of an attempt: a RUNNING task finishes, fails, goes back to the queue, or is stopped."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Count, Q
from django.utils.translation import gettext as _

from tasks.exceptions import TaskStateError
from tasks.logfields import task_fields
from tasks.models import Delivery, Task
from tasks.notify import notify_ended, notify_many, notify_progress
from tasks.transitions.table import D, S, _end_attempt, _move, _reload, _running, append_log

# One logger for the package, named as before the split: log records keep logger "tasks.transitions".
logger = logging.getLogger("tasks.transitions")


@dataclass(frozen=True)
class TaskEnd:
    """How one attempt of a task ended with every recipient settled: its log text and failed flag.

    ``task`` is the sender's copy of the row (read by the claim): after the move it is updated in
    memory for the log record and the notification instead of being read again.
    """

    task: Task
    log: str
    failed: bool


def finish_many(ends: Sequence[TaskEnd], *, now: datetime, notices: list[Task] | None = None) -> list[int]:
    """RUNNING (under each attempt) -> FINISHED for every end; one UPDATE per distinct (attempt, log, flag).

    Returns the ids that were finished by this call (a task stopped or taken over meanwhile is not).
    One transaction: one commit for the updates and every owner's notification merges. With
    ``notices`` the finished tasks are appended to it instead, and the caller writes their end
    notices later (the send loop, with its next progress beat: tasks.delivery.send.Beat). Nothing
    else notifies a FINISHED task, so a later end notice still comes last.
    """
    groups: dict[tuple[int, str, bool], list[int]] = defaultdict(list)
    by_id = {end.task.pk: end for end in ends}
    for end in ends:
        groups[(end.task.attempts, end.log, end.failed)].append(end.task.pk)
    won: list[int] = []
    with transaction.atomic():
        for (attempt, log, failed), ids in groups.items():
            moved = _move(
                sources=(S.RUNNING,),
                target=S.FINISHED,
                where=Q(pk__in=ids, attempts=attempt),
                progress=100,
                failed=failed,
                ended_at=now,
                log=append_log(log),
            )
            if moved:
                won.extend(ids if moved == len(ids) else _finished_now(ids, now))
        ended = [by_id[pk].task for pk in won]
        for task in ended:
            task.status, task.progress, task.failed, task.ended_at = S.FINISHED, 100, by_id[task.pk].failed, now
            logger.info(
                "task finished task_id=%s failed=%s", task.pk, task.failed, extra=task_fields(task, "running->finished")
            )
        if notices is None:
            notify_many(ended, ended=True)
    if notices is not None:
        notices.extend(ended)  # committed: never the notice of a finish that was rolled back
    return won


def _finished_now(ids: list[int], now: datetime) -> list[int]:
    return list(Task.objects.filter(pk__in=ids, status=S.FINISHED, ended_at=now).values_list("pk", flat=True))


@transaction.atomic
def fail(*, task_id: int, attempt: int, reason: str, now: datetime) -> bool:
    """RUNNING (this attempt) -> FINISHED + failed, for an error that retrying cannot fix (a broken template)."""
    task = _end_attempt(
        task_id=task_id, where=_running(task_id, attempt), target=S.FINISHED, line=_("error: %s") % reason, now=now
    )
    if task is not None:
        _report_failed(task, reason)
    return task is not None


@transaction.atomic
def hand_back(*, task_id: int, attempt: int, reason: str, left: int, now: datetime, relay: bool = False) -> bool:
    """After a transient error: RUNNING -> QUEUED with ``left`` retries to come, or (none left) FINISHED + failed.

    ``relay``: the relay refused the worker (TLS, login); the log says the task waits for it, not how many are left.

    Fenced by the attempt number; the task's open deliveries are given back (leases dropped), so
    any other worker sending it stops at its next recipient. Returns whether it went back to
    QUEUED; the caller sees to its next job.
    """
    where = _running(task_id, attempt)
    if left <= 0:
        task = _end_attempt(
            task_id=task_id, where=where, target=S.FINISHED, line=f"attempt {attempt}: {reason}; giving up", now=now
        )
        if task is not None:
            _report_failed(task, reason)
        return False
    waiting = "kept pending until the relay accepts" if relay else f"retrying ({left} left)"
    task = _end_attempt(
        task_id=task_id, where=where, target=S.QUEUED, line=f"attempt {attempt}: {reason}; {waiting}", now=now
    )
    if task is None:
        return False
    logger.warning(
        "transient failure task_id=%s retries_left=%s error=%s",
        task_id,
        left,
        reason,
        extra=task_fields(task, "running->queued"),
    )
    notify_progress(task)
    return True


def _report_failed(task: Task, reason: str) -> None:
    logger.error("task failed task_id=%s error=%s", task.pk, reason, extra=task_fields(task, "running->finished"))
    notify_ended(task)


@dataclass(frozen=True)
class Stopped:
    """A running task that was stopped: how many recipients it has, and how many were already handed to SMTP."""

    task: Task
    sent: int
    total: int


def stop(*, task_id: int, who: str, now: datetime) -> Stopped | None:
    """RUNNING -> CANCELED while recipients remain unsent; None if the task is not RUNNING.

    Lock, check, write, inside the caller's transaction. The still pending deliveries become
    ``canceled`` in the same transaction: a worker's ownership check for one of them either
    committed before (that message is going out, and is counted as sent) or fails. Raises
    TaskStateError (code ``task_already_sent``) when no recipient is left to stop; then nothing changes.
    """
    row = Task.objects.select_for_update().filter(pk=task_id).values_list("status", "attempts").first()
    if row is None or row[0] != S.RUNNING:
        return None
    stopped = Delivery.objects.filter(task_id=task_id, status=D.PENDING).update(
        status=D.CANCELED, lease_token="", lease_until=None
    )
    counts = dict(Delivery.objects.filter(task_id=task_id).values_list("status").annotate(n=Count("pk")))
    total = sum(counts.values())
    sent = counts.get(D.SENT, 0) + counts.get(D.SENDING, 0)
    if not stopped and total:
        raise TaskStateError(
            _("Task #%(id)s has already been handed to the mail server for every recipient (%(n)d sent).")
            % {"id": task_id, "n": sent},
            code="task_already_sent",
        )
    _move(
        sources=(S.RUNNING,),
        target=S.CANCELED,
        where=_running(task_id, row[1]),
        ended_at=now,
        progress=sent * 100 // total if total else 0,  # what went out, not the last heartbeat's figure
        log=append_log(f"stopped by {who}: {sent} of {total} sent"),
    )
    task = _reload(task_id)
    logger.info(
        "task stopped task_id=%s by=%s sent=%s of %s",
        task_id,
        who,
        sent,
        total,
        extra=task_fields(task, "running->canceled"),
    )
    notify_ended(task)
    return Stopped(task=task, sent=sent, total=total)
