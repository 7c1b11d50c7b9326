"""Send one slice: for each recipient render, check ownership, hand to SMTP, record the outcome.

A recipient of a bulk template whose address is on the suppression list (one query per slice) is
settled ``suppressed`` instead, with no SMTP transaction. Right before each SMTP transaction
one conditional statement marks that recipient ``sending``,
only while its task is RUNNING under the slice's attempt and the recipient is still leased to this
slice (tasks.delivery.records.settle_and_mark). A cancel, stop, edit or takeover that commits
first makes it match nothing, and this worker sends nothing more of that task; one that commits
after sees the message going out. The relay gets one write per mail: the previous message's text
and the next message's commands (tasks.smtp.Outbox). The text is written only after the same
transaction has checked that its recipient is still leased here, so a worker that was frozen and
taken over writes nothing more. The next message is rendered and encoded while the relay answers;
each outcome is recorded in the transaction that checks the next one, after the replies are read
and before the next text is written. That order bounds a takeover's duplicates to the one message
on the wire: the transaction run during the relay's answer instead left the outcome just read
unrecorded across the next write (fault case 12: 2 extra copies; docs/performance.md).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from subscriptions.selectors import suppressed_among
from tasks.delivery import prepared, records
from tasks.delivery.claim import Slice, Work
from tasks.delivery.policy import lease_seconds
from tasks.mail import describe, is_permanent, render_for, template_meta
from tasks.models import SETTLED_DELIVERY, Delivery, Task
from tasks.notify import notify_many
from tasks.recipients import Recipient
from tasks.smtp import Envelope, NotReleased, Outbox, session

logger = logging.getLogger(__name__)

D = Delivery.Status


class TransientSendError(Exception):
    """A 4xx answer or a broken connection: the task is handed back for a retry."""


class NotOurs(Exception):
    """The held message's recipient was taken over or handed back before its text was written."""


@dataclass
class Beat:
    """When this worker last wrote heartbeats and progress, and the end notices it holds; lives for one job.

    The end notices of the tasks this job finished (``ended``) are written with the next beat, or
    when the job ends or waits (write_ended), not in each finish's transaction. Why: in a burst of
    one-recipient tasks every finish rewrote its owner's two lists while holding SQLite's write
    lock, which the other workers' per-mail transactions wait for (measured: a 2-worker burst 0.96-1.24
    -> 1.34-1.38 x ceiling, docs/performance.md). Held back for at most TASK_PROGRESS_INTERVAL, an
    owner's ends of that time go in one write per list, and a page learns of an end as soon as of
    a progress step.
    """

    due: float = field(default_factory=lambda: time.monotonic() + settings.TASK_PROGRESS_INTERVAL)
    ended: list[Task] = field(default_factory=list)

    def ready(self) -> bool:
        return time.monotonic() >= self.due

    def reset(self) -> None:
        self.due = time.monotonic() + settings.TASK_PROGRESS_INTERVAL


def write_ended(beat: Beat) -> None:
    """Write the end notices ``beat`` holds (one transaction), and hold none."""
    ended, beat.ended = beat.ended, []
    if ended:
        with transaction.atomic():
            notify_many(ended, ended=True)


@dataclass
class SliceResult:
    """What sending a slice did, by task: stopped ones (ownership lost) and errors that ended their sending."""

    sent: int = 0
    stopped: set[int] = field(default_factory=set)
    transient: dict[int, TransientSendError] = field(default_factory=dict)
    broken: dict[int, BaseException] = field(default_factory=dict)  # could not render: fail the task

    def done_with(self, task_id: int) -> bool:
        return task_id in self.stopped or task_id in self.transient or task_id in self.broken


class SliceSender:
    """Sends one claimed slice; ``on_transient`` hands a task back the moment its send fails transiently."""

    def __init__(self, chunk: Slice, beat: Beat, on_transient: Callable[[Task, TransientSendError], None]) -> None:
        self.chunk = chunk
        self.beat = beat
        self.on_transient = on_transient
        self.result = SliceResult()
        self._records: list[records.Record] = []

    def run(self) -> SliceResult:
        suppressed = suppressed_deliveries(self.chunk)
        with session, Outbox(session, settle=self._settled, on_wait=self._record_settled) as outbox:
            for work in self.chunk.work:
                task = self.chunk.tasks[work.task_id]
                if self.result.done_with(task.pk):
                    continue
                if self.beat.ready():
                    self._beat()
                if work.delivery_id in suppressed:  # settled with the next transaction; nothing goes out
                    self._records.append(records.Record(work.delivery_id, D.SUPPRESSED))
                    continue
                wire = self._wire(work, task, outbox)
                outbox.collect()
                if wire is None:
                    continue
                if self._advance(outbox, work, task):
                    outbox.start(work, wire)
            outbox.collect()
            self._advance(outbox, None, None)  # the last held text, if still ours
        self._advance(None, None, None)  # the last outcomes
        return self.result

    def _advance(self, outbox: Outbox | None, work: Work | None, task: Task | None) -> bool:
        """Record what has settled, hand back tasks that failed transiently, and take ``work`` if still ours.

        The held message's text (``outbox.holding``) is written only if its recipient is still
        leased to this slice and its task is not being handed back; else it is dropped unwritten.
        """
        pending, self._records = self._records, []
        transient = [task_id for task_id in self.result.transient if task_id not in self.result.stopped]
        claim = None
        if work is not None and task is not None and not self.result.done_with(task.pk):
            claim = records.Claim(
                delivery_id=work.delivery_id, task_id=task.pk, attempt=task.attempts, token=self.chunk.token
            )
        held: Work | None = outbox.holding if outbox is not None else None
        if outbox is not None and held is not None and held.task_id in self.result.transient:
            outbox.drop(NotOurs(f"task_id={held.task_id} is handed back"))
            held = None
        hold = records.Hold(delivery_id=held.delivery_id, token=self.chunk.token) if held is not None else None
        checked = records.settle_and_mark(pending, claim, hold)
        if outbox is not None and held is not None and not checked.held:
            logger.info("recipient taken over before its text was sent, task_id=%s", held.task_id)
            outbox.drop(NotOurs(f"delivery_id={held.delivery_id} is no longer leased here"))
            self.result.stopped.add(held.task_id)
        for task_id in transient:
            self.result.stopped.add(task_id)  # handed back once, here
            self.on_transient(self.chunk.tasks[task_id], self.result.transient[task_id])
        if claim is not None and not checked.marked:
            logger.info("ownership lost, sending no more of task_id=%s in this slice", claim.task_id)
            self.result.stopped.add(claim.task_id)
        if outbox is not None and not checked.marked:
            outbox.release()  # the held text (if any) goes alone: no next message to write with it
        return checked.marked

    def _record_settled(self) -> None:
        """The relay is slow to answer the next commands: record the outcomes known so far before waiting."""
        pending, self._records = self._records, []
        if pending:
            records.settle_and_mark(pending, None)

    def _settled(self, work: Work, error: BaseException | None) -> None:
        """The Outbox's callback: one recipient's SMTP outcome, recorded in the next transaction."""
        if isinstance(error, (NotOurs, NotReleased)):
            return  # nothing written: whoever holds the recipient now records it
        if error is None:
            self._records.append(records.Record(work.delivery_id, D.SENT))
            self.result.sent += 1
        elif is_permanent(error):
            self._records.append(records.Record(work.delivery_id, D.FAILED, describe(error)))
        else:
            self._records.append(records.Record(work.delivery_id, D.PENDING, describe(error)))
            self.result.transient.setdefault(work.task_id, TransientSendError(f"{work.address}: {describe(error)}"))

    def _wire(self, work: Work, task: Task, outbox: Outbox) -> EmailMessage | Envelope | None:
        """The recipient's message encoded for the wire: prepared while the job waited, or rendered now."""
        recipient = Recipient(address=work.address, name=work.name, context=work.context)
        ready = prepared.take(prepared.key_of(task, recipient), message_id=work.message_id)
        if ready is not None:
            return ready
        message = self._render(work, task, recipient)
        return outbox.encode(message) if message is not None else None

    def _render(self, work: Work, task: Task, recipient: Recipient) -> EmailMessage | None:
        """The recipient's message, or None with its task marked broken: a bad template fails that task only."""
        try:
            return render_for(
                recipient,
                template=task.template,
                context=task.context,
                message_id=work.message_id,
                subject_prefix=task.subject_prefix,
            )
        except Exception as exc:  # noqa: BLE001 - see above
            self.result.broken[task.pk] = exc
            return None

    def _beat(self) -> None:
        """Renew the lease, heartbeat and record progress of this slice's open tasks, and show them."""
        self.beat.reset()
        now = timezone.now()
        records.renew(token=self.chunk.token, until=now + timedelta(seconds=lease_seconds()))
        open_tasks = [t for t in self.chunk.tasks.values() if not self.result.done_with(t.pk)]
        if not open_tasks:
            write_ended(self.beat)
            return
        counts = settled_counts(open_tasks)  # a read: before the write lock, which the counting would hold
        ended, self.beat.ended = self.beat.ended, []
        # One transaction: a task another worker finishes meanwhile is either finished after this
        # notice (its end notice comes later) or no longer RUNNING here (no notice), never shown running again.
        with transaction.atomic():
            notify_many(write_progress(open_tasks, counts, now=now))
            notify_many(ended, ended=True)


def suppressed_deliveries(chunk: Slice) -> set[int]:
    """The deliveries of ``chunk`` not to send: bulk recipients whose address is suppressed for the task's list.

    One query for the slice; transactional templates are never looked up.
    """
    lists: dict[int, str] = {}
    for task in chunk.tasks.values():
        try:
            meta = template_meta(task.template)
        except ImproperlyConfigured:
            continue  # rendering fails this task with the same error
        if meta.bulk:
            lists[task.pk] = meta.list_name
    bulk = [work for work in chunk.work if work.task_id in lists]
    found = suppressed_among((work.address, lists[work.task_id]) for work in bulk)
    return {work.delivery_id for work in bulk if (work.address, lists[work.task_id]) in found}


def settled_counts(tasks: list[Task]) -> dict[int, tuple[int, int]]:
    """``task_id -> (settled, total)`` recipients: one grouped count on the (task, status) index."""
    counts = dict.fromkeys((t.pk for t in tasks), (0, 0))
    rows = Delivery.objects.filter(task_id__in=list(counts)).values_list("task_id", "status").annotate(n=Count("*"))
    for task_id, status, n in rows.order_by():
        settled, total = counts[task_id]
        counts[task_id] = (settled + n if status in SETTLED_DELIVERY else settled, total + n)
    return counts


def write_progress(tasks: list[Task], counts: dict[int, tuple[int, int]], *, now: datetime) -> list[Task]:
    """Heartbeat each task (fenced by its attempt) with its share of settled recipients (``counts``) as progress.

    Returns the tasks still RUNNING under their attempt (the others were stopped, finished or taken over).
    """
    groups: dict[tuple[int, int], list[Task]] = defaultdict(list)
    for task in tasks:
        settled, total = counts[task.pk]
        task.progress = min(99, int(settled * 100 / total)) if total else 0
        groups[(task.attempts, task.progress)].append(task)
    alive = []
    for (attempt, progress), group in groups.items():  # a burst's one-recipient tasks: a few UPDATEs, not one each
        ids = [task.pk for task in group]
        running = Task.objects.filter(pk__in=ids, status=Task.Status.RUNNING, attempts=attempt)
        moved = running.update(progress=progress, heartbeat_at=now)
        if moved == len(ids):
            alive.extend(group)
        elif moved:
            still = set(running.values_list("pk", flat=True))
            alive.extend(task for task in group if task.pk in still)
    return alive
