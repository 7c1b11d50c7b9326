"""Send due reservations in batches: one claim for many tasks, one notification merge per owner.

Why: at 09:00 sharp a thousand reservations fall due together. Sent one per RQ job, each mail
costs an RQ round trip, a claim, three notification merges (each rewriting the owner's whole
list) and a finish, which caps a worker at ~50 mails/s. Here the job that fires first claims up to
TASK_BATCH_SIZE due reservations of its queue in one locked transaction, sends them over the
worker's one SMTP connection and finishes them in bulk; the now redundant jobs of the other
claimed tasks are removed from Redis (one that already started finds its task RUNNING and does
nothing). A job released before its due time (scheduler.release_time) keeps sending whatever
falls due until its own task is sent, so it waits productively instead of sleeping.

Every guarantee of the one-task path holds: a task is claimed before anything is sent (a
conditional update under row locks), and only once it is due (reserved_at <= now: never early);
each recipient has a Delivery with its Message-ID fixed before sending, recorded SENT or FAILED
right after its send; a cancel is seen between recipients (every TASK_PROGRESS_INTERVAL), after
which that task gets nothing more; a transient SMTP error hands that task back for a retry.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks import scheduler
from tasks.logfields import task_fields
from tasks.mail import new_message_id, render_message
from tasks.models import Delivery, Task
from tasks.services.dispatch import append_log
from tasks.services.notify import notify_many
from tasks.services.reconcile import is_missed
from tasks.services.run import MAX_EARLY_WAIT, Outcome, TransientSendError, hand_back, job_retries_left, record_send
from tasks.smtp import Outbox, session

logger = logging.getLogger(__name__)

RESERVED, RUNNING = Task.Status.RESERVED, Task.Status.RUNNING
LOOP_SECONDS = 60.0  # how long past its due time a job keeps claiming batches before sending its own alone
IDLE_PAUSE = 0.005  # seconds between claims while a due task is held by another worker's claim


def batching_enabled() -> bool:
    return int(settings.TASK_BATCH_SIZE) > 1


@dataclass
class Item:
    """One claimed task of a batch and what happened to it."""

    task: Task
    pending: list[tuple[int, str, str]] = field(default_factory=list)  # delivery pk, address, Message-ID
    outcome: Outcome = field(default_factory=Outcome)
    error: BaseException | None = None  # the transient or unexpected error that ended its sending
    done: bool = False  # every recipient attempted, or stopped by a cancel
    written: bool = False  # its end is recorded in the database
    shown: bool = False  # its RUNNING state is in the owner's notifications


def claim_due(*, queue: str, now: datetime, limit: int) -> list[Task]:
    """Claim up to ``limit`` RESERVED tasks of ``queue`` due at ``now`` (RESERVED -> RUNNING), soonest first.

    Lock, check, update in one transaction: PostgreSQL locks the rows and skips ones another
    worker is claiming; SQLite's IMMEDIATE transaction holds the write lock. So every task
    returned was moved by this call, and by no one else.
    """
    with transaction.atomic():
        candidates = (
            Task.objects.select_for_update(skip_locked=True)
            .filter(status=RESERVED, queue=queue, reserved_at__lte=now)
            # Later than the missed-send grace: not sent; their own jobs or the reconciler mark them missed.
            .filter(reserved_at__gte=now - timedelta(minutes=settings.MISSED_GRACE_MINUTES))
            .order_by("reserved_at", "pk")
        )
        tasks = list(candidates[:limit])
        if not tasks:
            return []
        won = Task.objects.filter(pk__in=[t.pk for t in tasks], status=RESERVED, reserved_at__lte=now).update(
            status=RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
        )
        if won != len(tasks):  # cannot happen under the locks; roll back rather than guess
            raise RuntimeError(f"claimed {won} of {len(tasks)} locked tasks")
    for task in tasks:
        task.status, task.started_at, task.heartbeat_at, task.attempts = RUNNING, now, now, task.attempts + 1
    return tasks


def run_reserved(*, task_id: int) -> bool:
    """Send the RESERVED task ``task_id`` once due, with every other reservation due in its queue.

    Returns False when the task is not a reservation due within MAX_EARLY_WAIT (or was moved, or
    could not be reached in LOOP_SECONDS): the one-task path in run_task then decides. Raises what
    the task's own send raised (after handing it back or failing it), so RQ retries or records it.
    """
    row = Task.objects.filter(pk=task_id).values("status", "reserved_at", "queue").first()
    if row is None or row["status"] != RESERVED or row["reserved_at"] is None:
        return False
    queue, due = row["queue"], row["reserved_at"]
    if is_missed(due, now=timezone.now()):
        return False  # run_task's path applies the missed-reservation policy
    if (due - timezone.now()).total_seconds() > MAX_EARLY_WAIT:
        return False
    own_error: BaseException | None = None
    deadline = time.monotonic() + MAX_EARLY_WAIT + LOOP_SECONDS
    while time.monotonic() < deadline:
        now = timezone.now()
        claimed = claim_due(queue=queue, now=now, limit=int(settings.TASK_BATCH_SIZE))
        if claimed:
            own_error = send_batch(claimed, own_task_id=task_id) or own_error
            if any(task.pk == task_id for task in claimed):
                break
            continue
        current = Task.objects.filter(pk=task_id).values("status", "reserved_at").first()
        if current is None or current["status"] != RESERVED:
            break  # another worker claimed it, or it was canceled or sent now
        if current["reserved_at"] != due:
            return False  # moved while this job waited
        time.sleep(_pause(queue=queue, own_due=due, now=now))
    else:
        return False
    if own_error is not None:
        raise own_error
    return True


def _pause(*, queue: str, own_due: datetime, now: datetime) -> float:
    """Seconds until the next reservation of ``queue`` falls due (at most until our own)."""
    upcoming = (
        Task.objects.filter(status=RESERVED, queue=queue, reserved_at__lte=own_due)
        .order_by("reserved_at")
        .values_list("reserved_at", flat=True)
        .first()
    )
    seconds = ((upcoming or own_due) - now).total_seconds()
    return min(max(seconds, IDLE_PAUSE), MAX_EARLY_WAIT)


def send_batch(tasks: list[Task], *, own_task_id: int) -> BaseException | None:
    """Send every claimed task, write their ends in bulk; return the own task's error, if any.

    A foreign task that fails transiently is handed back with a job of its own; the own task is
    handed back through run's usual path, and its error returned for the caller to raise.
    """
    queue = tasks[0].queue
    try:
        scheduler.discard_jobs(task_ids=[t.pk for t in tasks if t.pk != own_task_id], queue_name=queue)
    except scheduler.QueueError as exc:
        logger.warning("could not discard batched jobs queue=%s error=%s; they will find nothing", queue, exc)
    logger.info("batch claimed queue=%s tasks=%s own task_id=%s", queue, len(tasks), own_task_id)
    for task in tasks:
        logger.info(
            "task running task_id=%s owner=%s attempt=%s batch_of=%s",
            task.pk,
            task.owner_id,
            task.attempts,
            own_task_id,
            extra=task_fields(task, "pending->running"),
        )
    items = _prepare(tasks)
    try:
        _send_items(items)
    except BaseException:
        _release_unsent(items)
        raise
    _write_ends(items)
    return _settle_errors(items, own_task_id=own_task_id)


def _prepare(tasks: list[Task]) -> list[Item]:
    """Create the missing deliveries of all tasks at once (Message-IDs fixed), then load the pending ones."""
    ids = [task.pk for task in tasks]
    known = set(Delivery.objects.filter(task_id__in=ids).values_list("task_id", "address"))
    missing = [
        Delivery(task_id=task.pk, address=address, message_id=new_message_id())
        for task in tasks
        for address in task.recipients
        if (task.pk, address) not in known
    ]
    Delivery.objects.bulk_create(missing, ignore_conflicts=True, batch_size=500)
    pending: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    rows = Delivery.objects.filter(task_id__in=ids, status=Delivery.Status.PENDING).order_by("pk")
    for task_id, pk, address, message_id in rows.values_list("task_id", "pk", "address", "message_id"):
        pending[task_id].append((pk, address, message_id))
    return [Item(task=task, pending=pending[task.pk]) for task in tasks]


def _send_items(items: list[Item]) -> None:
    """Send every item's pending recipients in order, each recorded before the next goes out.

    The next message is rendered while the current one is on the wire (tasks.smtp.Outbox);
    beats run with nothing on the wire, so every send they count is recorded.
    """
    next_beat = time.monotonic() + settings.TASK_PROGRESS_INTERVAL
    with session, Outbox(session, settle=_settle) as outbox:
        for item in items:
            total = len(item.task.recipients)
            done = total - len(item.pending)
            for pk, address, message_id in item.pending:
                if time.monotonic() >= next_beat:
                    outbox.flush()
                    next_beat = time.monotonic() + settings.TASK_PROGRESS_INTERVAL
                    _beat(items, current=item, done=done)
                if item.done or item.error is not None:  # canceled meanwhile, or its last send failed
                    break
                message = _render(item, address, message_id)
                outbox.flush()
                if message is None or item.error is not None:
                    break
                outbox.start((item, pk, address), message)
                done += 1
            item.done = True
        outbox.flush()


def _render(item: Item, address: str, message_id: str) -> EmailMessage | None:
    """The recipient's message, or None with the item's error set: a broken template fails this task, not the batch."""
    task = item.task
    try:
        return render_message(template=task.template, context=task.context, recipient=address, message_id=message_id)
    except Exception as exc:  # noqa: BLE001 - see above
        item.error = exc
        return None


def _settle(key: tuple[Item, int, str], error: BaseException | None) -> None:
    """Record one recipient's send; a transient error stops its task (handed back afterwards)."""
    item, pk, address = key
    item.error = record_send(pk, address, error=error, outcome=item.outcome) or item.error


def _beat(items: list[Item], *, current: Item, done: int) -> None:
    """Heartbeat the open tasks, record the current one's progress, see cancels, write finished ones.

    Tasks still waiting are shown as RUNNING here, once: most tasks of a burst finish before the
    first beat, and a RUNNING notice for each would cost a merge per owner for nothing.
    """
    open_ids = [item.task.pk for item in items if not item.written]
    Task.objects.filter(pk__in=open_ids, status=RUNNING).update(heartbeat_at=timezone.now())
    total = len(current.task.recipients)
    current.task.progress = min(99, int(done * 100 / total)) if total else 0
    Task.objects.filter(pk=current.task.pk, status=RUNNING).update(progress=current.task.progress)
    # Fenced by the attempt number: a task the reconciler handed to another worker while this one
    # was paused is no longer ours, even though it is RUNNING again.
    rows = Task.objects.filter(pk__in=open_ids).values_list("pk", "status", "attempts")
    mine = {item.task.pk: item.task.attempts for item in items}
    ours = {pk for pk, status, attempts in rows if status == RUNNING and attempts == mine[pk]}
    stopped = set(open_ids) - ours
    for item in items:
        if item.task.pk in stopped and not item.done:
            item.outcome.stopped = item.done = True
    show = [item.task for item in items if not item.done and (item is current or not item.shown)]
    for item in items:
        item.shown = item.shown or not item.done
    _write_ends(items, also_progress=show)


@transaction.atomic
def _write_ends(items: list[Item], also_progress: list[Task] | None = None) -> None:
    """Finish the done tasks in bulk (one conditional update per distinct log line), then notify.

    One transaction: one commit for all the updates and every owner's merges.
    """
    ready = [item for item in items if item.done and not item.written and item.error is None]
    groups: dict[tuple[str, bool], list[int]] = defaultdict(list)
    for item in ready:
        lines = [f"attempt {item.task.attempts}: sent {item.outcome.sent}, failed {len(item.outcome.failed)}"]
        lines += [f"permanent failure {line}" for line in item.outcome.failed]
        groups[("\n".join(lines), bool(item.outcome.failed))].append(item.task.pk)
        item.written = True
    now = timezone.now()
    for (log, failed), ids in groups.items():
        Task.objects.filter(pk__in=ids, status=RUNNING).update(
            status=Task.Status.FINISHED, progress=100, failed=failed, ended_at=now, log=append_log(log)
        )
    ended = list(Task.objects.filter(pk__in=[item.task.pk for item in ready])) if ready else []
    if ended:
        logger.info("batch finished tasks=%s", len(ended))
        for task in ended:
            transition = "running->finished" if task.status == Task.Status.FINISHED else "running->canceled"
            logger.info(
                "task ended task_id=%s status=%s failed=%s",
                task.pk,
                task.status,
                task.failed,
                extra=task_fields(task, transition),
            )
        notify_many(ended, ended=True)
    if also_progress:
        notify_many(also_progress)


def _settle_errors(items: list[Item], *, own_task_id: int) -> BaseException | None:
    """Hand back or fail the tasks whose sending ended in an error; return the own task's error."""
    own_error = None
    for item in items:
        if item.error is None or item.written:
            continue
        item.written = True
        task, exc = item.task, item.error
        if task.pk == own_task_id:
            own_error = exc
            if isinstance(exc, TransientSendError):
                hand_back(task, exc, left=job_retries_left(task))
            else:
                _fail(task, exc)
        elif isinstance(exc, TransientSendError):
            _hand_back(task, exc)
        else:
            _fail(task, exc)
    return own_error


def _fail(task: Task, exc: BaseException) -> None:
    logger.error("task failed task_id=%s error=%s", task.pk, exc, extra=task_fields(task, "running->finished"))
    Task.objects.filter(pk=task.pk, status=RUNNING).update(
        status=Task.Status.FINISHED, failed=True, ended_at=timezone.now(), log=append_log(_("error: %s") % exc)
    )
    notify_many(Task.objects.filter(pk=task.pk), ended=True)


def _hand_back(task: Task, exc: BaseException) -> None:
    """A foreign task failed transiently: QUEUED with a new job after the next retry interval, or failed.

    Its own job was discarded when the batch claimed it, so it gets a new one whose retry policy
    counts the attempts already made.
    """
    intervals = list(settings.TASK_RETRY_INTERVALS)
    used = task.attempts
    left = len(intervals) - used + 1 if used <= len(intervals) else 0
    if hand_back(task, exc, left=left):
        _redispatch(task, delay=intervals[used - 1], retries_used=used)


def _release_unsent(items: list[Item]) -> None:
    """The batch broke off (database or worker trouble): give unsent tasks back at once, best effort."""
    for item in items:
        if item.written or item.outcome.sent or item.outcome.failed:
            continue  # partly sent: the reconciler resumes it from its deliveries
        try:
            won = Task.objects.filter(pk=item.task.pk, status=RUNNING).update(
                status=Task.Status.QUEUED, log=append_log("batch interrupted before sending; queued again")
            )
            if won:
                _redispatch(item.task, delay=0, retries_used=0)
        except Exception as exc:  # noqa: BLE001 - already handling a failure; the reconciler heals the rest
            logger.error("could not release task_id=%s error=%s", item.task.pk, exc)


def _redispatch(task: Task, *, delay: float, retries_used: int) -> None:
    try:
        scheduler.schedule(
            task_id=task.pk,
            due=timezone.now() + timedelta(seconds=delay),
            queue_name=task.queue,
            retries_used=retries_used,
        )
    except scheduler.QueueError as exc:
        logger.error("could not schedule retry task_id=%s error=%s; the reconciler will", task.pk, exc)
