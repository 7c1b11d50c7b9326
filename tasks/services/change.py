"""Change a task that has not ended: cancel it, stop it, move it, or send it now."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import NoReturn

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks import scheduler
from tasks.exceptions import TaskStateError
from tasks.logfields import task_fields
from tasks.models import PENDING, Task
from tasks.selectors import get_task_of
from tasks.services.dispatch import append_log, dispatch
from tasks.services.notify import notify_ended, notify_reserve
from tasks.validation import ensure_reservable

logger = logging.getLogger(__name__)
Owner = AbstractBaseUser | None


def _forget_job(task_id: int) -> None:
    """Best-effort removal of the job after commit; the CANCELED row already stops it from sending."""
    try:
        scheduler.cancel(task_id=task_id)
    except scheduler.QueueError as exc:
        logger.warning("could not remove job task_id=%s error=%s; its claim will fail", task_id, exc)


def _stop_job(task_id: int) -> None:
    """Best-effort stop command; the job also sees the CANCELED row between recipients."""
    try:
        scheduler.stop(task_id=task_id)
    except scheduler.QueueError as exc:
        logger.warning("could not send stop-job task_id=%s error=%s", task_id, exc)


def _move_job(task_id: int, due: datetime, queue_name: str) -> None:
    try:
        scheduler.reschedule(task_id=task_id, due=due, queue_name=queue_name)
    except scheduler.QueueError as exc:
        logger.error("could not move job task_id=%s error=%s; the reconciler will", task_id, exc)
        Task.objects.filter(pk=task_id).update(log=append_log(f"queue unavailable while rescheduling: {exc}"))


def _cancel_pending(task: Task, *, now: datetime, who: str) -> bool:
    won = Task.objects.filter(pk=task.pk, status__in=PENDING).update(
        status=Task.Status.CANCELED, ended_at=now, log=append_log(f"canceled by {who}")
    )
    if won:
        transaction.on_commit(partial(_forget_job, task.pk))
    return bool(won)


def _reload_and_notify(task_id: int) -> Task:
    task = Task.objects.get(pk=task_id)
    notify_ended(task)
    return task


@transaction.atomic
def cancel_reserve(*, owner: Owner, task_id: int) -> Task:
    """Cancel a RESERVED (or still QUEUED) task: CANCELED in the database, then its job removed.

    Idempotent: a task already CANCELED is returned unchanged. A task that is running or finished
    raises TaskStateError; another user's task raises TaskNotFoundError.
    """
    task = get_task_of(owner, task_id)
    now = timezone.now()
    if _cancel_pending(task, now=now, who=getattr(owner, "username", "staff")):
        logger.info(
            "task canceled task_id=%s owner=%s transition=%s->canceled",
            task.pk,
            task.owner_id,
            task.status,
            extra=task_fields(task, f"{task.status}->canceled"),
        )
        return _reload_and_notify(task.pk)
    task.refresh_from_db()
    if task.status == Task.Status.CANCELED:
        return task
    raise_state(task, "cancel")


@transaction.atomic
def cancel_task(*, owner: Owner, task_id: int) -> Task:
    """Cancel a pending task, or stop a RUNNING one (CANCELED, then a stop-job command).

    A running job also sees the CANCELED row between recipients and stops by itself, so a lost
    stop command still stops it. Idempotent on CANCELED; raises TaskStateError on FINISHED.
    """
    task = get_task_of(owner, task_id)
    now = timezone.now()
    who = getattr(owner, "username", "staff")
    if _cancel_pending(task, now=now, who=who):
        logger.info(
            "task canceled task_id=%s owner=%s",
            task.pk,
            task.owner_id,
            extra=task_fields(task, f"{task.status}->canceled"),
        )
        return _reload_and_notify(task.pk)
    won = Task.objects.filter(pk=task.pk, status=Task.Status.RUNNING).update(
        status=Task.Status.CANCELED, ended_at=now, log=append_log(f"stopped by {who}")
    )
    if won:
        transaction.on_commit(partial(_stop_job, task.pk))
        logger.info(
            "task stopped task_id=%s owner=%s transition=running->canceled",
            task.pk,
            task.owner_id,
            extra=task_fields(task, "running->canceled"),
        )
        return _reload_and_notify(task.pk)
    task.refresh_from_db()
    if task.status == Task.Status.CANCELED:
        return task
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
    """Move a RESERVED task to ``scheduled_at`` (lock, check, save), then move its job.

    Validation as in reserve_task (ReservationError). Any other status raises TaskStateError.
    """
    now = timezone.now()
    ensure_reservable(scheduled_at, now=now)
    get_task_of(owner, task_id)
    task = Task.objects.select_for_update().get(pk=task_id)
    if task.status != Task.Status.RESERVED:
        raise_state(task, "reschedule")
    old = task.reserved_at
    task.reserved_at = scheduled_at
    task.save(update_fields=["reserved_at"])
    Task.objects.filter(pk=task.pk).update(log=append_log(f"rescheduled from {old.isoformat() if old else '-'}"))
    notify_reserve(task)
    transaction.on_commit(partial(_move_job, task.pk, scheduled_at, task.queue))
    logger.info(
        "task rescheduled task_id=%s owner=%s due=%s",
        task.pk,
        task.owner_id,
        scheduled_at.isoformat(),
        extra=task_fields(task, "reserved->reserved"),
    )
    return task


@transaction.atomic
def send_now(*, owner: Owner, task_id: int) -> Task:
    """Turn a RESERVED task into an immediate send: QUEUED, its scheduled job replaced by a queued one."""
    task = get_task_of(owner, task_id)
    won = Task.objects.filter(pk=task.pk, status=Task.Status.RESERVED).update(
        status=Task.Status.QUEUED, queue=scheduler.SEND_QUEUE, log=append_log("sent now instead of at its time")
    )
    if not won:
        task.refresh_from_db()
        raise_state(task, "send_now")
    transaction.on_commit(partial(_forget_job, task.pk))
    transaction.on_commit(partial(dispatch, task_id=task.pk, due=None, queue_name=scheduler.SEND_QUEUE))
    task.refresh_from_db()
    notify_reserve(task)
    return task


reschedule = reschedule_task
