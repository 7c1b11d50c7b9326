"""Create sends: now (enqueue_task), later (reserve_task), or again (retry_task)."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache, partial
from typing import cast

from django.contrib.auth.models import AbstractBaseUser, User
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Field
from django.utils import timezone

from tasks import scheduler
from tasks.exceptions import unreadable_context
from tasks.logfields import task_fields
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.notify import notify_progress, notify_reserve
from tasks.selectors import get_task_of, stored_context_of
from tasks.services.dispatch import dispatch
from tasks.validation import clean_mail, ensure_description, ensure_reservable

logger = logging.getLogger(__name__)


def _create(*, owner: AbstractBaseUser, mail: MailSpec, description: str, status: str, **fields: object) -> Task:
    task = Task(
        owner=cast(User, owner),  # AUTH_USER_MODEL is django.contrib.auth's User
        description=description,
        template=mail.template,
        recipients=list(mail.recipients),
        context=mail.context,
        status=status,
        **fields,
    )
    _insert(task)
    return task


@lru_cache(maxsize=4)
def _insert_statement(alias: str) -> tuple[list[Field], str, bool] | None:
    """The INSERT of a new Task row on database ``alias``: its fields, the SQL, and whether it returns the id.

    None if a field needs the database to fill it in (db_default, generated); then the ORM inserts.
    """
    connection = connections[alias]
    meta = Task._meta
    fields = [f for f in meta.local_concrete_fields if not f.primary_key]
    if any(f.generated or f.has_db_default() for f in fields):  # type: ignore[attr-defined]
        return None
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})"  # noqa: S608 - model names, bound values
    returning = connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {quote(meta.pk.column)}"
    return fields, sql, returning


def _insert(task: Task) -> None:
    """Insert the new ``task`` with one statement built once per process; the values still come
    from each field's own pre_save and get_db_prep_save (auto_now_add, JSON, datetimes).

    Why: Model.save spent ~120 µs of a ~2 ms reservation building the same INSERT each time
    (measured). Task has no save() override and no signal receivers (STYLE.md, section 2).
    """
    conn = connections[DEFAULT_DB_ALIAS]
    statement = _insert_statement(conn.alias)
    if statement is None:
        task.save(force_insert=True)
        return
    fields, sql, returning = statement
    params = [f.get_db_prep_save(f.pre_save(task, True), conn) for f in fields]
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        task.pk = cursor.fetchone()[0] if returning else cursor.lastrowid
    task._state.adding = False
    task._state.db = conn.alias


def enqueue_task(
    *,
    owner: AbstractBaseUser,
    mail: MailSpec,
    description: str,
    queue: str = scheduler.SEND_QUEUE,
    test_marker: str = "",
) -> Task:
    """Create a QUEUED task and put its job on ``queue`` after commit.

    A ``test_marker`` makes it a test send (``is_test``), every copy's Subject starting with it.

    Raises ReservationError for invalid input (nothing written) and QueueUnavailableError when
    Redis cannot be reached (the row is kept as CANCELED + failed, with the reason in its log).
    """
    mail = clean_mail(mail)
    description = ensure_description(description)
    with transaction.atomic():
        test = {"is_test": True, "subject_prefix": test_marker} if test_marker else {}
        task = _create(owner=owner, mail=mail, description=description, status=Task.Status.QUEUED, queue=queue, **test)
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


def reserve_task(
    *, owner: AbstractBaseUser, scheduled_at: datetime, mail: MailSpec, description: str, series_id: int | None = None
) -> Task:
    """Create a RESERVED task due at ``scheduled_at`` and schedule its job after commit.

    ``series_id`` makes it an occurrence of that series (series.plan creates those). Raises
    ReservationError if the time is naive, sooner than RESERVATION_MIN_LEAD or beyond
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
            series_id=series_id,
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
    context = stored_context_of(old)
    if context is None:
        raise unreadable_context(old.pk)
    mail = MailSpec(template=old.template, recipients=tuple(old.recipients), context=context)
    return enqueue_task(owner=old.owner, mail=mail, description=old.description)
