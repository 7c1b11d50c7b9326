"""Make Redis agree with the database: the Task rows are the truth, RQ only delivers them.

Run by ``manage.py reconcile_tasks`` and, every RECONCILE_INTERVAL seconds, by one of the workers
(tasks.worker.MailWorker). Every repair is a conditional update or a unique job id, so two
reconcilers running at once (or a reconciler and a worker) never create a second job for a task
nor send twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from tasks import scheduler, transitions
from tasks.delivery.policy import is_missed, max_attempts, relay_retry_delay
from tasks.models import PENDING, Task

logger = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0  # a row this fresh may still be waiting for its own on-commit dispatch
MAX_QUEUE_SCANS = 100  # LPOS look-ups per pass for jobs that claim to be queued for a long time
LIVE = ("queued", "started", "scheduled", "deferred")


@dataclass
class ReconcileReport:
    """What one pass found and did, by task id."""

    checked: int = 0
    redis_ok: bool = True
    scheduled: list[int] = field(default_factory=list)  # RESERVED without a job: scheduled again
    enqueued: list[int] = field(default_factory=list)  # QUEUED without a live job: queued again
    released: list[int] = field(default_factory=list)  # due jobs the RQ scheduler left: queued
    recovered: list[int] = field(default_factory=list)  # RUNNING with a dead worker: queued again
    failed: list[int] = field(default_factory=list)  # RUNNING with a dead worker, no attempt left
    missed: list[int] = field(default_factory=list)  # reservations later than the grace: not sent
    locks_broken: list[str] = field(default_factory=list)  # queues whose scheduler lock a dead process held

    @property
    def changed(self) -> bool:
        found = (self.scheduled, self.enqueued, self.released, self.recovered, self.failed, self.missed)
        return any(found) or bool(self.locks_broken)

    def summary(self) -> str:
        parts = [f"checked={self.checked}", f"redis_ok={self.redis_ok}"]
        for name in ("scheduled", "enqueued", "released", "recovered", "failed", "missed", "locks_broken"):
            ids = getattr(self, name)
            parts.append(f"{name}={len(ids)}" + (f"{ids[:20]}" if ids else ""))
        return " ".join(parts)


def reconcile_tasks(*, now: datetime | None = None, horizon: float | None = None) -> ReconcileReport:
    """Compare pending and running tasks with RQ and repair what is missing; return what was done.

    ``horizon`` (seconds; the workers' periodic passes give RECONCILE_HORIZON) limits the pass to
    queued tasks and reservations due before ``now + horizon``. Why: a pass over every reservation
    cost about 40 us each (measured: 0.2 s for 5,000), every RECONCILE_INTERVAL, in a worker; with
    months of reservations that is a worker reconciling instead of sending. A later reservation's lost
    job is re-created once it comes within the horizon, still well before its time. None (the
    command, after Redis lost its data) looks at all of them.

    - RUNNING with no heartbeat for HEARTBEAT_TIMEOUT s (its worker died): back to QUEUED with a
      fresh job while attempts remain, else FINISHED + failed; either way a log line on the row.
    - A scheduler lock whose holder stopped heart-beating: deleted, so a live worker's scheduler
      takes it at its next maintenance step.
    - Jobs overdue in a scheduled registry by RELEASE_OVERDUE_SECONDS (dead or paused scheduler):
      moved onto their queue.
    - RESERVED with no scheduled or released job: scheduled again at its time (at once if due), or
      marked missed if later than MISSED_GRACE_MINUTES. QUEUED with no live job: queued again; but
      while the relay refuses us (tasks.relay), one already tried is scheduled relay_retry_delay(attempts)
      ahead, with RQ's retries shortened by its attempts, so its retries stay backed off (bounded by the
      last TASK_RETRY_INTERVALS value) after its own job's retries are spent.
    Redis errors end the Redis part of the pass (``redis_ok=False``); the next pass retries.
    """
    now = now or timezone.now()
    report = ReconcileReport()
    _recover_stuck(now, report)
    try:
        report.locks_broken = scheduler.break_dead_scheduler_locks()
        report.released = scheduler.release_overdue(older_than=settings.RELEASE_OVERDUE_SECONDS)
        _repair_pending(now, report, horizon)
    except scheduler.QueueError as exc:
        report.redis_ok = False
        logger.error("reconcile: Redis unavailable, will retry: %s: %s", type(exc).__name__, exc)
    if report.changed or not report.redis_ok:
        logger.warning("reconcile: %s", report.summary())
    return report


def _recover_stuck(now: datetime, report: ReconcileReport) -> None:
    cutoff = now - timedelta(seconds=settings.HEARTBEAT_TIMEOUT)
    stuck = Task.objects.filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff), status=Task.Status.RUNNING
    ).values_list("pk", "attempts", "queue", "heartbeat_at")
    for task_id, attempts, queue, beat in list(stuck):
        silent = (now - beat).total_seconds() if beat else float(settings.HEARTBEAT_TIMEOUT)
        retry = attempts < max_attempts()
        line = f"attempt {attempts}: worker lost (no heartbeat for {silent:.0f}s)"
        if not transitions.recover(task_id=task_id, attempt=attempts, beat=beat, retry=retry, line=line, now=now):
            continue
        if not retry:
            logger.error("worker lost, no attempts left task_id=%s attempt=%s", task_id, attempts)
            report.failed.append(task_id)
            continue
        logger.warning("worker lost, retrying task_id=%s attempt=%s silent=%.0fs", task_id, attempts, silent)
        report.recovered.append(task_id)
        try:
            scheduler.requeue(task_id=task_id, queue_name=queue)
        except scheduler.QueueError as exc:  # the pending pass queues it once Redis answers
            logger.error("could not requeue task_id=%s error=%s", task_id, exc)


def _repair_pending(now: datetime, report: ReconcileReport, horizon: float | None) -> None:
    pending = Q(status__in=PENDING)
    if horizon is not None:  # each term on the (status, reserved_at) index
        soon = now + timedelta(seconds=horizon)
        pending = Q(status=Task.Status.QUEUED) | Q(status=Task.Status.RESERVED, reserved_at__lte=soon)
    rows = list(
        Task.objects.filter(pending, created_at__lt=now - timedelta(seconds=SETTLE_SECONDS))
        .order_by("pk")
        .values_list("pk", "status", "reserved_at", "queue", "created_at", "heartbeat_at", "attempts")
    )
    jobs = scheduler.inspect_jobs([row[0] for row in rows])
    report.checked = len(rows)
    stale_before = now - timedelta(seconds=settings.HEARTBEAT_TIMEOUT)
    scans = 0
    todo: list[tuple[int, str, datetime | None, str, int]] = []
    for task_id, status, due, queue, created, beat, attempts in rows:
        info = jobs[task_id]
        if info.status in LIVE and (info.status != "scheduled" or info.scheduled_at is not None):
            touched = max(t for t in (created, due, beat) if t is not None)
            if info.status == "scheduled" or touched >= stale_before:
                continue
            # Live in name for HEARTBEAT_TIMEOUT: a worker that died before claiming, or a lost list entry.
            if info.status in ("queued", "deferred"):
                scans += 1
                if scans > MAX_QUEUE_SCANS or scheduler.is_waiting_in_queue(task_id=task_id, queue_name=queue):
                    continue
        todo.append((task_id, status, due, queue, attempts))
    # Rows were read before their jobs: a task that ended meanwhile has a finished job, not a lost one.
    unchanged = set(
        Task.objects.filter(pk__in=[t[0] for t in todo], status__in=PENDING).values_list("pk", "status", "reserved_at")
    )
    refused = bool(todo) and scheduler.relay_refusal() is not None
    for task_id, status, due, queue, attempts in todo:
        if (task_id, status, due) not in unchanged:
            continue
        if refused and status == Task.Status.QUEUED and attempts > 0:
            _back_off(task_id, queue, attempts, now, report)
        else:
            _repair_one(task_id, status, due, queue, now, report)


def _back_off(task_id: int, queue: str, attempts: int, now: datetime, report: ReconcileReport) -> None:
    """A task the refusing relay handed back, its job's retries spent: its next try after relay_retry_delay."""
    due = now + timedelta(seconds=relay_retry_delay(attempts))
    scheduler.requeue(task_id=task_id, queue_name=queue, due=due, retries_used=attempts)
    logger.warning(
        "reconcile: relay refused, next try scheduled task_id=%s attempt=%s due=%s", task_id, attempts, due.isoformat()
    )
    report.enqueued.append(task_id)
    if not Task.objects.filter(pk=task_id, status__in=PENDING).exists():
        scheduler.cancel(task_id=task_id)  # canceled meanwhile: do not leave a job behind


def _repair_one(
    task_id: int, status: str, due: datetime | None, queue: str, now: datetime, report: ReconcileReport
) -> None:
    if status == Task.Status.RESERVED and due is not None:
        if is_missed(due, now=now):
            if transitions.mark_missed(task_id=task_id, now=now):
                scheduler.cancel(task_id=task_id)
                report.missed.append(task_id)
            return
        if due > now:
            scheduler.schedule(task_id=task_id, due=due, queue_name=queue)
        else:
            scheduler.requeue(task_id=task_id, queue_name=queue)
        logger.warning("reconcile: job was missing, scheduled again task_id=%s due=%s", task_id, due.isoformat())
        report.scheduled.append(task_id)
    else:
        scheduler.requeue(task_id=task_id, queue_name=queue)
        logger.warning("reconcile: job was missing, queued again task_id=%s status=%s", task_id, status)
        report.enqueued.append(task_id)
    if not Task.objects.filter(pk=task_id, status__in=PENDING).exists():
        scheduler.cancel(task_id=task_id)  # canceled meanwhile: do not leave a job behind
