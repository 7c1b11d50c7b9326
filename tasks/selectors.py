"""Reads of tasks, always scoped to an owner; no writes, no queue."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Case, Count, Prefetch, Q, QuerySet, When

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
    """
    queryset = Task.objects.all() if owner is None else list_tasks_of(owner)
    try:
        return queryset.get(pk=task_id)
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
    first = Prefetch(
        "deliveries",
        queryset=Delivery.objects.order_by("pk")[:HISTORY_DELIVERIES_SHOWN],
        to_attr="first_deliveries",
    )
    return list_tasks_of(owner).annotate(sent_count=sent, failed_count=failed).prefetch_related(first)


def list_deliveries_of(task: Task) -> QuerySet[Delivery]:
    """Return one task's deliveries (its per-recipient outcome), failures first."""
    order = Case(When(status=Delivery.Status.FAILED, then=0), default=1)
    return Delivery.objects.filter(task=task).order_by(order, "pk")
