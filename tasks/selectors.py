"""Reads of tasks, always scoped to an owner; no writes, no queue."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Case, Count, Prefetch, Q, QuerySet, TextField, When
from django.db.models.functions import Cast

from tasks.display import read_stored
from tasks.exceptions import TaskNotFoundError
from tasks.models import CANCELLABLE, Delivery, Task


def list_tasks_of(owner: AbstractBaseUser | AnonymousUser) -> QuerySet[Task]:
    """Return the owner's tasks, newest first (none for an anonymous user)."""
    if not owner.is_authenticated:
        return Task.objects.none()
    return Task.objects.filter(owner_id=owner.pk).order_by("-created_at", "-pk")


def get_task_of(owner: AbstractBaseUser | AnonymousUser | None, task_id: int) -> Task:
    """Return the owner's task ``task_id``; another user's task raises TaskNotFoundError.

    ``owner=None`` is for staff and system callers (admin, reconciler) that act on any task.
    The decoded context is deferred and ``context_text`` given (with_context_text): a row stored
    before the input limits can still be canceled, moved or shown; stored_context_of() reads it.
    """
    queryset = with_context_text(Task.objects.all() if owner is None else list_tasks_of(owner))
    try:
        return queryset.get(pk=task_id)
    except (Task.DoesNotExist, ValueError, TypeError):
        raise TaskNotFoundError(task_id) from None


def with_context_text(queryset: QuerySet[Task]) -> QuerySet[Task]:
    """The tasks with their context as stored JSON text (``context_text``), the decoded field deferred.

    For pages: a row stored before the input limits may hold a context too deep for the json
    module to decode (tasks.display), and a page must still show it.
    """
    return queryset.defer("context").annotate(context_text=Cast("context", output_field=TextField()))


def stored_context_of(task: Task) -> dict | None:
    """The task's stored context as a dict, or None when it cannot be read safely (too deep, not an object).

    ``task`` comes from with_context_text() (get_task_of, get_task_shown_of): it reads ``context_text``.
    """
    context = read_stored(task.context_text)  # type: ignore[attr-defined]  # the annotation of with_context_text
    return context if isinstance(context, dict) else None


def get_task_shown_of(owner: AbstractBaseUser | AnonymousUser, task_id: int) -> Task:
    """Return the owner's task ``task_id`` for its page: as get_task_of, with ``context_text`` for ``context``."""
    try:
        return with_context_text(list_tasks_of(owner)).get(pk=task_id)
    except (Task.DoesNotExist, ValueError, TypeError):
        raise TaskNotFoundError(task_id) from None


def list_unfinished_of(owner: AbstractBaseUser | AnonymousUser) -> QuerySet[Task]:
    """Return the owner's queued, reserved and running tasks, soonest first."""
    return list_tasks_of(owner).filter(status__in=CANCELLABLE).order_by("reserved_at", "pk")


HISTORY_DELIVERIES_SHOWN = 5


def list_history_of(owner: AbstractBaseUser | AnonymousUser) -> QuerySet[Task]:
    """Return the owner's tasks, newest first, with per-outcome delivery counts and the first few.

    A task may have 10,000 recipients: the list carries counts and ``first_deliveries`` (a sliced
    prefetch, one query per page), and the task page shows the rest, paginated.
    """
    sent = Count("deliveries", filter=Q(deliveries__status=Delivery.Status.SENT))
    failed = Count("deliveries", filter=Q(deliveries__status=Delivery.Status.FAILED))
    suppressed = Count("deliveries", filter=Q(deliveries__status=Delivery.Status.SUPPRESSED))
    first = Prefetch(
        "deliveries",
        queryset=Delivery.objects.order_by("pk")[:HISTORY_DELIVERIES_SHOWN],
        to_attr="first_deliveries",
    )
    tasks = list_tasks_of(owner).defer("context")  # not shown; and an old row's may be too deep to decode
    return tasks.annotate(sent_count=sent, failed_count=failed, suppressed_count=suppressed).prefetch_related(first)


def list_deliveries_of(task: Task) -> QuerySet[Delivery]:
    """Return one task's deliveries (its per-recipient outcome), failures first."""
    order = Case(When(status=Delivery.Status.FAILED, then=0), default=1)
    return Delivery.objects.filter(task=task).order_by(order, "pk")
