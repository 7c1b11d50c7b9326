"""Change a task that has not ended: cancel it, stop it, move it, or send it now (through tasks.transitions)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import NoReturn

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks import scheduler, transitions
from tasks.exceptions import TaskStateError
from tasks.models import Task
from tasks.selectors import get_task_of
from tasks.services.dispatch import dispatch
from tasks.validation import ensure_reservable

logger = logging.getLogger(__name__)
Owner = AbstractBaseUser | None


def _forget_job(task_id: int) -> None:
    """Best-effort removal of the job after commit; the CANCELED row already stops it from sending."""
    try:
        scheduler.cancel(task_id=task_id)
    except Exception as exc:  # noqa: BLE001 - after commit: the cancel stands whatever the queue says
        logger.warning("could not remove job task_id=%s error=%s; its claim will fail", task_id, exc)


def move_job(task_id: int, due: datetime, queue_name: str) -> None:
    """After commit: move the task's job to ``due``; a queue error is logged and noted, the reconciler repairs it."""
    try:
        scheduler.reschedule(task_id=task_id, due=due, queue_name=queue_name)
    except scheduler.QueueError as exc:
        logger.error("could not move job task_id=%s error=%s; the reconciler will", task_id, exc)
        transitions.note(task_id=task_id, line=f"queue unavailable while rescheduling: {exc}")


@dataclass(frozen=True)
class Canceled:
    """What a cancel did: canceled before anything went out, or stopped with ``sent`` of ``total`` already sent."""

    task: Task
    stopped: bool = False
    sent: int = 0
    total: int = 0

    @property
    def message(self) -> str:
        if self.stopped:
            return _("Mail #%(id)s stopped: %(sent)d of %(total)d sent.") % {
                "id": self.task.pk,
                "sent": self.sent,
                "total": self.total,
            }
        return _("Mail #%(id)s canceled; nothing was sent.") % {"id": self.task.pk}


def who_of(owner: Owner) -> str:
    """The name a task's log gives the one who changed it: the username, or ``staff`` (owner=None)."""
    return getattr(owner, "username", "staff")


@transaction.atomic
def cancel_reserve(*, owner: Owner, task_id: int) -> Canceled:
    """Cancel a RESERVED (or still QUEUED) task: CANCELED in the database, then its job removed after commit.

    Exactly one of concurrent cancels wins; a task already canceled, running or finished raises
    TaskStateError (409); another user's task raises TaskNotFoundError.
    """
    task = get_task_of(owner, task_id)
    if transitions.cancel_pending(task_id=task.pk, who=who_of(owner), now=timezone.now()):
        transaction.on_commit(partial(_forget_job, task.pk))
        return Canceled(task=get_task_of(None, task.pk))
    task.refresh_from_db()
    raise_state(task, "cancel")


@transaction.atomic
def cancel_task(*, owner: Owner, task_id: int) -> Canceled:
    """Cancel a pending task, or stop a RUNNING one so that nothing more of it goes out.

    Pending: QUEUED/RESERVED -> CANCELED, its job removed after commit. Running: RUNNING ->
    CANCELED with its unsent recipients closed, in one locked transaction ordered against the
    workers' per-recipient ownership checks (tasks.transitions.stop): once this returns, no SMTP
    transaction of the task starts; the answer says how many were already handed to the server.
    Raises TaskStateError (409) when every recipient was already sent (``task_already_sent``), or
    the task already ended (a second cancel included); TaskNotFoundError for another user's task.
    """
    task = get_task_of(owner, task_id)
    now = timezone.now()
    if transitions.cancel_pending(task_id=task.pk, who=who_of(owner), now=now):
        transaction.on_commit(partial(_forget_job, task.pk))
        return Canceled(task=get_task_of(None, task.pk))
    stopped = transitions.stop(task_id=task.pk, who=who_of(owner), now=now)
    if stopped is not None:
        return Canceled(task=stopped.task, stopped=True, sent=stopped.sent, total=stopped.total)
    task.refresh_from_db()
    raise_state(task, "cancel")


def raise_state(task: Task, action: str) -> NoReturn:
    """Raise the TaskStateError that explains why ``action`` is not possible now."""
    messages: dict[str, str] = {
        Task.Status.RUNNING: _("Task #%(id)s is already being sent and can no longer be changed."),
        Task.Status.FINISHED: _("Task #%(id)s has already finished."),
        Task.Status.CANCELED: _("Task #%(id)s was canceled."),
        Task.Status.QUEUED: _("Task #%(id)s is queued to be sent now and has no reservation time."),
    }
    message = messages.get(task.status, _("Task #%(id)s cannot be changed now."))
    raise TaskStateError(message % {"id": task.pk}, code=f"task_{task.status}")


@transaction.atomic
def reschedule_task(*, owner: Owner, task_id: int, scheduled_at: datetime) -> Task:
    """Move a RESERVED task to ``scheduled_at`` (lock, check, save), then move its job after commit.

    Validation as in reserve_task (ReservationError). Any other status raises TaskStateError.
    """
    ensure_reservable(scheduled_at, now=timezone.now())
    get_task_of(owner, task_id)
    task = transitions.reschedule(task_id=task_id, scheduled_at=scheduled_at)
    if task is None:
        raise_state(get_task_of(None, task_id), "reschedule")
    transaction.on_commit(partial(move_job, task.pk, scheduled_at, task.queue))
    return task


@transaction.atomic
def send_now(*, owner: Owner, task_id: int) -> Task:
    """Turn a RESERVED task into an immediate send: QUEUED, its scheduled job replaced by a queued one."""
    task = get_task_of(owner, task_id)
    if not transitions.send_now(task_id=task.pk, queue=scheduler.SEND_QUEUE):
        task.refresh_from_db()
        raise_state(task, "send_now")
    transaction.on_commit(partial(_forget_job, task.pk))
    transaction.on_commit(partial(dispatch, task_id=task.pk, due=None, queue_name=scheduler.SEND_QUEUE))
    task.refresh_from_db()
    return task


reschedule = reschedule_task
