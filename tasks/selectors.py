"""Reads of tasks, always scoped to an owner; no writes, no queue."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from tasks.exceptions import TaskNotFoundError
from tasks.models import CANCELLABLE, Task


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
