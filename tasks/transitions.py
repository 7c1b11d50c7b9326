"""The only writer of ``Task.status``: one function per transition.

Each transition is one conditional update (``filter(pk=..., status__in=sources).update(...)``) or
a locked read-check-write, whose source states must be allowed by the live table
``tasks.models.TRANSITIONS`` (checked on every call). While a task is RUNNING its writes are fenced
by the attempt number, so a worker that was frozen or cut off and taken over matches no row.
Every transition writes its log line, its log record and its notification. A result of 0 rows
means someone else moved the task first: the function returns False, it never retries.

Transitions that take a task away from a sending worker (stop, hand back, recover) also close its
open deliveries in the same transaction, because the worker's per-recipient ownership check
(tasks.delivery.records.mark_sending) is ordered against those rows.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks.exceptions import TaskStateError
from tasks.logfields import task_fields
from tasks.models import TRANSITIONS, Delivery, Task
from tasks.notify import notify_ended, notify_many, notify_progress, notify_reserve

logger = logging.getLogger(__name__)

S = Task.Status
D = Delivery.Status


def append_log(line: str) -> Concat:
    """An expression that appends a time-stamped line to ``Task.log`` in the same UPDATE."""
    stamp = timezone.now().strftime("%Y-%m-%dT%H:%M:%S%z")
    return Concat(F("log"), Value(f"{stamp} {line}\n"))


def note(*, task_id: int, line: str) -> None:
    """Append a line to the task's log without changing its status (e.g. a queue error while moving it)."""
    Task.objects.filter(pk=task_id).update(log=append_log(line))


def _allowed(sources: Iterable[str], target: str) -> list[str]:
    """The sources, after checking that the transition table allows each of them to become ``target``."""
    sources = list(sources)
    for source in sources:
        if target not in TRANSITIONS[source]:
            raise RuntimeError(f"transition {source}->{target} is not in Task.TRANSITIONS")
    return sources


def _move(*, sources: Iterable[str], target: str, where: Q, **fields: object) -> int:
    return Task.objects.filter(where, status__in=_allowed(sources, target)).update(status=target, **fields)


def _reload(task_id: int) -> Task:
    """The row after a transition, for its log record and notification; the context is not decoded.

    Why: a row stored before the input limits may hold a context too deep for the json module,
    and a transition (failing that very task, say) must not trip over it.
    """
    return Task.objects.defer("context", "recipients").get(pk=task_id)


def _running(task_id: int, attempt: int) -> Q:
    return Q(pk=task_id, attempts=attempt)


def _give_back_deliveries(task_id: int) -> int:
    """The task's open deliveries become PENDING without a lease, so no worker's ownership check matches them."""
    return Delivery.objects.filter(task_id=task_id, status__in=(D.PENDING, D.SENDING)).update(
        status=D.PENDING, lease_token="", lease_until=None
    )


# --- Claims ---------------------------------------------------------------------------------


def claim_own(*, task_id: int, now: datetime) -> bool:
    """QUEUED, or RESERVED and due, -> RUNNING (attempts + 1): the job's own task. False if not claimable.

    A reservation whose time lies ahead (moved while its job was already released) is not claimed.
    """
    due = Q(status=S.QUEUED) | Q(status=S.RESERVED, reserved_at__lte=now)
    won = _move(
        sources=(S.QUEUED, S.RESERVED),
        target=S.RUNNING,
        where=due & Q(pk=task_id),
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
    )
    return bool(won)


def claim_due(*, now: datetime, limit: int, exclude: Sequence[int] = ()) -> list[int]:
    """RESERVED tasks due at ``now`` -> RUNNING (attempts + 1), soonest first, at most ``limit``; their ids.

    Call inside the claim's transaction: PostgreSQL locks the rows and skips ones another worker is
    claiming; SQLite's IMMEDIATE transaction holds the write lock. So every id returned was moved
    by this call and by no one else. Reservations later than the missed-send grace are left to
    their own jobs and the reconciler, which mark them missed.
    """
    if limit <= 0:
        return []
    grace = now - timedelta(minutes=settings.MISSED_GRACE_MINUTES)
    ids = list(
        Task.objects.select_for_update(skip_locked=True)
        .filter(status=S.RESERVED, reserved_at__lte=now, reserved_at__gte=grace)
        .exclude(pk__in=list(exclude))
        .order_by("reserved_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return []
    won = _move(
        sources=(S.RESERVED,),
        target=S.RUNNING,
        where=Q(pk__in=ids, reserved_at__lte=now),
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
    )
    if won != len(ids):  # cannot happen under the locks; roll back rather than guess
        raise RuntimeError(f"claimed {won} of {len(ids)} locked tasks")
    return ids


# --- Ends of an attempt ---------------------------------------------------------------------


@dataclass(frozen=True)
class TaskEnd:
    """How one attempt of a task ended with every recipient settled: its log text and failed flag.

    ``task`` is the sender's copy of the row (read by the claim): after the move it is updated in
    memory for the log record and the notification instead of being read again.
    """

    task: Task
    log: str
    failed: bool


def finish_many(ends: Sequence[TaskEnd], *, now: datetime) -> list[int]:
    """RUNNING (under each attempt) -> FINISHED for every end; one UPDATE per distinct (attempt, log, flag).

    Returns the ids that were finished by this call (a task stopped or taken over meanwhile is not).
    One transaction: one commit for the updates and every owner's notification merges.
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
        notify_many(ended, ended=True)
    return won


def _finished_now(ids: list[int], now: datetime) -> list[int]:
    return list(Task.objects.filter(pk__in=ids, status=S.FINISHED, ended_at=now).values_list("pk", flat=True))


def fail(*, task_id: int, attempt: int, reason: str, now: datetime) -> bool:
    """RUNNING (this attempt) -> FINISHED + failed, for an error that retrying cannot fix (a broken template)."""
    won = _move(
        sources=(S.RUNNING,),
        target=S.FINISHED,
        where=_running(task_id, attempt),
        failed=True,
        ended_at=now,
        log=append_log(_("error: %s") % reason),
    )
    if won:
        task = _reload(task_id)
        logger.error("task failed task_id=%s error=%s", task_id, reason, extra=task_fields(task, "running->finished"))
        notify_ended(task)
    return bool(won)


@transaction.atomic
def hand_back(*, task_id: int, attempt: int, reason: str, left: int, now: datetime, relay: bool = False) -> bool:
    """After a transient error: RUNNING -> QUEUED with ``left`` retries to come, or (none left) FINISHED + failed.

    ``relay``: the relay refused the worker (TLS, login); the log says the task waits for it, not how many are left.

    Fenced by the attempt number; the task's open deliveries are given back (leases dropped), so
    any other worker sending it stops at its next recipient. Returns whether it went back to
    QUEUED; the caller sees to its next job.
    """
    if left > 0:
        won = _move(
            sources=(S.RUNNING,),
            target=S.QUEUED,
            where=_running(task_id, attempt),
            log=append_log(
                f"attempt {attempt}: {reason}; "
                + ("kept pending until the relay accepts" if relay else f"retrying ({left} left)")
            ),
        )
        if won:
            _give_back_deliveries(task_id)
            task = _reload(task_id)
            logger.warning(
                "transient failure task_id=%s retries_left=%s error=%s",
                task_id,
                left,
                reason,
                extra=task_fields(task, "running->queued"),
            )
            notify_progress(task)
        return bool(won)
    won = _move(
        sources=(S.RUNNING,),
        target=S.FINISHED,
        where=_running(task_id, attempt),
        failed=True,
        ended_at=now,
        log=append_log(f"attempt {attempt}: {reason}; giving up"),
    )
    if won:
        _give_back_deliveries(task_id)
        task = _reload(task_id)
        logger.error("task failed task_id=%s error=%s", task_id, reason, extra=task_fields(task, "running->finished"))
        notify_ended(task)
    return False


@transaction.atomic
def recover(*, task_id: int, attempt: int, beat: datetime | None, retry: bool, line: str, now: datetime) -> bool:
    """A RUNNING task whose workers went silent (heartbeat still ``beat``): -> QUEUED, or FINISHED + failed.

    Fenced by attempt and heartbeat, so a worker that beat meanwhile keeps its task. The open
    deliveries are given back, so the silent worker's next ownership check fails. Returns whether
    this call moved the task.
    """
    where = _running(task_id, attempt) & Q(heartbeat_at=beat)
    if retry:
        won = _move(sources=(S.RUNNING,), target=S.QUEUED, where=where, log=append_log(f"{line}; retrying"))
    else:
        won = _move(
            sources=(S.RUNNING,),
            target=S.FINISHED,
            where=where,
            failed=True,
            ended_at=now,
            log=append_log(f"{line}; giving up"),
        )
    if won:
        _give_back_deliveries(task_id)
        task = _reload(task_id)
        (notify_progress if retry else notify_ended)(task)
    return bool(won)


# --- Doors: cancel, stop, move -------------------------------------------------------------


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
    task = Task.objects.get(pk=task_id)
    notify_reserve(task)
    logger.info(
        "task changed task_id=%s fields=%s due=%s",
        task_id,
        ",".join(sorted(changes)),
        task.reserved_at.isoformat() if task.reserved_at else "-",
        extra=task_fields(task, "reserved->reserved"),
    )
    return task
