"""Create sends: now (enqueue_task), later (reserve_task), or again (retry_task)."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import cast

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.utils import timezone

from tasks import scheduler
from tasks.logfields import task_fields
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.selectors import get_task_of
from tasks.services.dispatch import dispatch
from tasks.services.notify import notify_progress, notify_reserve
from tasks.validation import clean_mail, ensure_description, ensure_reservable

logger = logging.getLogger(__name__)


def _create(*, owner: AbstractBaseUser, mail: MailSpec, description: str, status: str, **fields: object) -> Task:
    return Task.objects.create(
        owner=cast(User, owner),  # AUTH_USER_MODEL is django.contrib.auth's User
        description=description,
        template=mail.template,
        recipients=list(mail.recipients),
        context=mail.context,
        status=status,
        **fields,
    )


def enqueue_task(
    *, owner: AbstractBaseUser, mail: MailSpec, description: str, queue: str = scheduler.SEND_QUEUE
) -> Task:
    """Create a QUEUED task and put its job on ``queue`` after commit.

    Raises ReservationError for invalid input (nothing written) and QueueUnavailableError when
    Redis cannot be reached (the row is kept as CANCELED + failed, with the reason in its log).
    """
    mail = clean_mail(mail)
    description = ensure_description(description)
    with transaction.atomic():
        task = _create(owner=owner, mail=mail, description=description, status=Task.Status.QUEUED, queue=queue)
        notify_progress(task)  # the page shows it as waiting until the worker takes it
        transaction.on_commit(partial(dispatch, task_id=task.pk, due=None, queue_name=queue))
    logger.info(
        "task created task_id=%s owner=%s queue=%s status=queued",
        task.pk,
        owner.pk,
        queue,
        extra=task_fields(task, "new->queued"),
    )
    return task


def reserve_task(*, owner: AbstractBaseUser, scheduled_at: datetime, mail: MailSpec, description: str) -> Task:
    """Create a RESERVED task due at ``scheduled_at`` and schedule its job after commit.

    Raises ReservationError if the time is naive, sooner than RESERVATION_MIN_LEAD or beyond
    RESERVATION_MAX_HORIZON, or if the description, template or recipients are invalid.
    """
    now = timezone.now()
    ensure_reservable(scheduled_at, now=now)
    mail = clean_mail(mail)
    description = ensure_description(description)
    with transaction.atomic():
        task = _create(
            owner=owner,
            mail=mail,
            description=description,
            status=Task.Status.RESERVED,
            reserved_at=scheduled_at,
            queue=scheduler.SCHEDULER_QUEUE,
        )
        notify_reserve(task)
        transaction.on_commit(
            partial(dispatch, task_id=task.pk, due=scheduled_at, queue_name=scheduler.SCHEDULER_QUEUE)
        )
    logger.info(
        "task created task_id=%s owner=%s status=reserved due=%s",
        task.pk,
        owner.pk,
        scheduled_at.isoformat(),
        extra=task_fields(task, "new->reserved"),
    )
    return task


def retry_task(*, owner: AbstractBaseUser | None, task_id: int) -> Task:
    """Send the content of a task again, now, as a new QUEUED task of the same owner.

    ``owner=None`` lets staff retry any task. Raises TaskNotFoundError for another user's task.
    """
    old = get_task_of(owner, task_id)
    mail = MailSpec(template=old.template, recipients=tuple(old.recipients), context=old.context)
    return enqueue_task(owner=old.owner, mail=mail, description=old.description)
