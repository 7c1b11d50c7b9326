"""What a job does: wait for its task's due time, then claim -> send -> settle slices until no due work is left.

One pipeline for every send: a lone queued task is a slice of its own, a burst of reservations is
shared by every worker whose job is running (each claims small slices of whatever is due), and a
big task's recipients are leased slice by slice, with helper jobs so idle workers join in.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import DatabaseError
from django.db.models import Count, Exists, OuterRef
from django.utils import timezone

from tasks import scheduler, transitions
from tasks.delivery import prepared, records
from tasks.delivery.claim import Slice, claim_slice
from tasks.delivery.lease import due_backlog
from tasks.delivery.policy import (
    IDLE_PAUSE,
    JOB_SECONDS,
    MAX_EARLY_WAIT,
    PREPARE_MARGIN,
    PREPARE_MIN_WAIT,
    SliceSizer,
    is_missed,
    prepare_wanted,
    relay_retry_delay,
    retries_after,
)
from tasks.delivery.send import Beat, SliceResult, SliceSender, TransientSendError, write_ended
from tasks.logfields import task_fields
from tasks.models import OPEN_DELIVERY, Delivery, Task
from tasks.smtp import session

logger = logging.getLogger(__name__)

S = Task.Status
D = Delivery.Status


@dataclass
class Own:
    """The job's own task: whether the job still has to claim it, and the error to raise for RQ's retry."""

    task_id: int
    due: datetime | None = None  # a reservation not yet claimable: its time
    pending: bool = True
    error: BaseException | None = None
    helped: set[int] = field(default_factory=set)  # tasks this job asked helper jobs for
    prepare_tried: bool = False  # this job has had its one chance to prepare the messages due by its time


def run_task(*, task_id: int) -> None:
    """Send task ``task_id`` and, while at it, whatever else is due; never a reservation before its time.

    QUEUED goes at once; RESERVED waits for its due time (a job released more than MAX_EARLY_WAIT
    early leaves it to its schedule; one later than MISSED_GRACE_MINUTES marks it missed). A task
    already RUNNING (a helper job) only helps with its open recipients; an ended one does nothing.
    Transient SMTP errors hand the task back; for the job's own task the error is re-raised after
    the loop so RQ retries the job. An unexpected error fails that task and is re-raised too.
    """
    prepared.clear()  # a job starts with none, however the last one ended
    own = _start(task_id)
    if own is None:
        return
    beat = Beat()
    try:
        _send_due(own, beat)
    finally:
        _write_ended(beat)
        prepared.clear()
    if own.error is not None:
        raise own.error


def _send_due(own: Own, beat: Beat) -> None:
    """Claim -> send -> settle slices until nothing is due and the own task is not waited for (or JOB_SECONDS)."""
    task_id = own.task_id
    sizer = SliceSizer()
    deadline = time.monotonic() + JOB_SECONDS
    while time.monotonic() < deadline:
        now = timezone.now()
        claim_own = own.pending and _due(own, now)
        backlog = due_backlog(now=now)  # counts the own task too if it is a due reservation
        own_counted = 1 if claim_own and own.due is not None else 0
        limit = sizer.size(backlog - own_counted + (1 if claim_own else 0))
        # Nothing due and the own task not yet: no claim. Why: an empty claim is still a write
        # transaction (SQLite's one write lock, taken from the other workers' per-recipient commits),
        # and a job waiting for its time asks again whenever the next reservation falls due.
        chunk = None
        if claim_own or backlog:
            chunk = claim_slice(
                own_task_id=task_id if claim_own else None, now=now, limit=limit, others=backlog > own_counted
            )
            if chunk.own_claimed:
                own.pending = False
        if not chunk:
            if not _still_waiting(own, now):
                break
            _write_ended(beat)  # a job waiting for the next reservation holds no end notice meanwhile
            _wait(own, now)
            continue
        _after_claim(chunk, own)
        sizer.start()
        try:
            result = SliceSender(chunk, beat, on_transient=lambda task, exc: _hand_back(task, exc, own)).run()
        finally:
            records.release(token=chunk.token)
        sizer.done(result.sent)
        _settle(chunk, result, own, beat)
    else:
        scheduler.enqueue_helpers(task_id=task_id, count=1)  # work may be left: a continuation job


def _write_ended(beat: Beat) -> None:
    """Write the end notices the job holds; a failure is logged, the tasks' rows are right already."""
    held = len(beat.ended)
    try:
        write_ended(beat)
    except DatabaseError as exc:
        logger.error("could not write the end notices of %s tasks: %s", held, exc)


def _start(task_id: int) -> Own | None:
    row = Task.objects.filter(pk=task_id).values_list("status", "reserved_at").first()
    if row is None or row[0] in (S.FINISHED, S.CANCELED):
        logger.info("task not claimable task_id=%s", task_id)
        return None
    status, due = row
    if status == S.RUNNING:
        return Own(task_id=task_id, pending=False)  # a helper: its task is being sent already
    if status == S.RESERVED and due is not None:
        now = timezone.now()
        if is_missed(due, now=now):
            transitions.mark_missed(task_id=task_id, now=now)
            return None
        if (due - now).total_seconds() > MAX_EARLY_WAIT:
            logger.warning(
                "job released %.1fs early task_id=%s; leaving it to its schedule", (due - now).total_seconds(), task_id
            )
            return None
        return Own(task_id=task_id, due=due)
    return Own(task_id=task_id)


def _due(own: Own, now: datetime) -> bool:
    return own.due is None or own.due <= now


def _still_waiting(own: Own, now: datetime) -> bool:
    """After an empty claim: is the own task a reservation not yet due (so the job waits for it)?"""
    if not own.pending:
        return False
    row = Task.objects.filter(pk=own.task_id).values_list("status", "reserved_at").first()
    if row is None or row[0] != S.RESERVED or row[1] is None or row[1] != own.due:
        own.pending = False  # claimed by another worker, canceled, sent now, or moved
        return False
    return (row[1] - now).total_seconds() <= MAX_EARLY_WAIT


def _wait(own: Own, now: datetime) -> None:
    """Wait for the next reservation's due time; the first wait of a job prepares the messages due by then."""
    pause = _pause(own, now)
    if not own.prepare_tried and own.due is not None and pause >= PREPARE_MIN_WAIT:
        own.prepare_tried = True
        started = time.monotonic()
        if _prepare_wanted():
            prepared.fill(until=own.due, deadline=started + pause - PREPARE_MARGIN)
        pause -= time.monotonic() - started
    if pause > 0:
        time.sleep(pause)


def _prepare_wanted() -> bool:
    """Whether this job prepares ahead (policy.prepare_wanted, from the live workers on this host)."""
    try:
        return prepare_wanted(workers_here=scheduler.workers_on_this_host())
    except scheduler.QueueError as exc:  # Redis unreachable: render each message when it is sent
        logger.warning("could not count this host's workers, not preparing: %s", exc)
        return False


def _pause(own: Own, now: datetime) -> float:
    """Seconds until the next reservation falls due (at most until the own one)."""
    limit = own.due or now
    upcoming = (
        Task.objects.filter(status=S.RESERVED, reserved_at__lte=limit)
        .order_by("reserved_at")
        .values_list("reserved_at", flat=True)
        .first()
    )
    seconds = ((upcoming or limit) - timezone.now()).total_seconds()
    return min(max(seconds, IDLE_PAUSE), MAX_EARLY_WAIT)


def _after_claim(chunk: Slice, own: Own) -> None:
    """Remove the now redundant jobs of tasks this slice claimed; ask idle workers to help with big ones."""
    by_queue: dict[str, list[int]] = defaultdict(list)
    for task_id in chunk.claimed:
        if task_id != own.task_id and task_id in chunk.tasks:
            by_queue[chunk.tasks[task_id].queue].append(task_id)
    for task_id in chunk.claimed:
        task = chunk.tasks.get(task_id)
        extra = task_fields(task, "pending->running") if task is not None else {"task_id": task_id}
        logger.info("task running task_id=%s slice=%s", task_id, chunk.token[:8], extra=extra)
    try:
        for queue, ids in by_queue.items():
            scheduler.discard_jobs(task_ids=ids, queue_name=queue)
        if chunk.unleased:
            for task_id in set(chunk.claimed) - own.helped:
                own.helped.add(task_id)
                scheduler.enqueue_helpers(task_id=task_id, count=max(0, scheduler.worker_count() - 1))
    except scheduler.QueueError as exc:  # the claimed jobs find their tasks RUNNING and do nothing
        logger.warning("could not discard or add jobs after a claim: %s", exc)


def _hand_back(task: Task, exc: TransientSendError, own: Own) -> None:
    """A transient error on one of the task's recipients: hand the whole task back (or fail it, no attempts left).

    If the relay refused this worker (TLS, login: tasks.relay) the task is never failed for it: it
    stays pending, retried after relay_retry_delay (its own job: RQ's retries, then the reconciler).
    """
    left, delay = retries_after(task.attempts)
    if task.pk == own.task_id:  # retried by RQ's retry of this job: as many as it has left
        left = min(left, scheduler.retries_left() or 0)
    refused = session.refusal is not None
    if refused:
        left, delay = max(left, 1), relay_retry_delay(task.attempts)
    queued = transitions.hand_back(
        task_id=task.pk, attempt=task.attempts, reason=str(exc), left=left, now=timezone.now(), relay=refused
    )
    if task.pk == own.task_id:
        own.error = exc  # RQ's retry of this job runs it again after its interval
        return
    if queued:
        try:
            scheduler.schedule(
                task_id=task.pk,
                due=timezone.now() + timedelta(seconds=delay),
                queue_name=task.queue,
                retries_used=task.attempts,
            )
        except scheduler.QueueError as qexc:
            logger.error("could not schedule retry task_id=%s error=%s; the reconciler will", task.pk, qexc)


def _settle(chunk: Slice, result: SliceResult, own: Own, beat: Beat) -> None:
    """Fail the tasks that could not be rendered; finish the ones with every recipient settled (notices: ``beat``)."""
    now = timezone.now()
    for task_id, exc in result.broken.items():
        task = chunk.tasks[task_id]
        transitions.fail(task_id=task_id, attempt=task.attempts, reason=str(exc), now=now)
        if task_id == own.task_id:
            own.error = exc
    candidates = [t for t in chunk.tasks.values() if not result.done_with(t.pk)]
    finish_settled(candidates, now=now, notices=beat.ended)


def finish_settled(tasks: list[Task], *, now: datetime, notices: list[Task] | None = None) -> list[int]:
    """FINISH each of ``tasks`` whose recipients are all settled, with its counts in the log; returns their ids.

    ``notices``: see transitions.finish_many (end notices held for the caller to write).
    """
    if not tasks:
        return []
    # Whether a task still has an open recipient: one EXISTS per task on the index of open rows, so
    # a slice of a 100,000-recipient task costs the same as one of ten (a grouped count of all its
    # rows after every slice made a big task quadratic: measured 0.36 of the ceiling at 100,000).
    still_open = Exists(Delivery.objects.filter(task_id=OuterRef("pk"), status__in=OPEN_DELIVERY))
    settled = set(Task.objects.filter(pk__in=[t.pk for t in tasks]).filter(~still_open).values_list("pk", flat=True))
    done = [t for t in tasks if t.pk in settled]
    if not done:
        return []
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    rows = Delivery.objects.filter(task_id__in=[t.pk for t in done]).values_list("task_id", "status")
    for task_id, status, n in rows.annotate(n=Count("pk")):
        counts[task_id][status] = n
    failures: dict[int, list[str]] = defaultdict(list)
    for task_id, address, error in Delivery.objects.filter(
        task_id__in=[t.pk for t in done if counts[t.pk].get(D.FAILED)], status=D.FAILED
    ).values_list("task_id", "address", "error"):
        failures[task_id].append(f"permanent failure {address}: {error}")
    ends = [_end(task, counts[task.pk], failures[task.pk]) for task in done]
    return transitions.finish_many(ends, now=now, notices=notices)


def _end(task: Task, counts: dict[str, int], failures: list[str]) -> transitions.TaskEnd:
    line = f"attempt {task.attempts}: sent {counts.get(D.SENT, 0)}, failed {counts.get(D.FAILED, 0)}"
    if counts.get(D.SUPPRESSED):
        line += f", suppressed {counts[D.SUPPRESSED]}"
    return transitions.TaskEnd(task=task, log="\n".join([line, *failures]), failed=bool(failures))
