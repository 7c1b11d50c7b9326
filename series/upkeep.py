"""The worker's side of a series: reserve the following occurrence when one is claimed, and repair.

``advance_claimed`` runs inside the worker's claim transaction (tasks.delivery.claim), so the next
occurrence exists as soon as the current one is being sent; ``reconcile_series`` runs with the
task reconciler (tasks.worker) and creates a next occurrence that is missing (a claim that could
not create it, an occurrence canceled on its own, missed or sent now) and cancels one left
waiting by a series that is paused or ended.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from reservemail.exceptions import ReservemailError
from series import plan
from series.models import Series
from tasks.models import Task

logger = logging.getLogger(__name__)

RECONCILE_BATCH = 200  # series repaired per pass; the next pass takes the rest


def advance_claimed(*, occurrences: Sequence[tuple[int, int, datetime | None]], now: datetime) -> None:
    """For each claimed ``(task_id, series_id, reserved_at)`` that is its series' next occurrence: mark it
    behind, reserve the following one.

    The claim passes the rows it read already (only tasks of a series). A retry's claim of the same
    task changes nothing. Errors are logged on the series and left to the reconciler; they never
    undo the claim (each series in its own savepoint).
    """
    for task_id, series_id, due in occurrences:
        try:
            with transaction.atomic():
                series = plan.lock_if_free(series_id)
                if series is None or series.next_task_pk != task_id:
                    continue
                plan.pass_next(series)
                if due is not None and (series.last_at is None or due > series.last_at):
                    series.last_at = due
                if series.status == Series.Status.ACTIVE:
                    plan.materialize(series, now=now, strict=False)
                else:
                    plan.save(series)
        except (ReservemailError, DatabaseError) as exc:
            logger.error("series_id=%s task_id=%s next occurrence not created: %s", series_id, task_id, exc)


def reconcile_series(*, now: datetime | None = None) -> list[int]:
    """Repair series whose next occurrence is missing or stale; return the ids of those repaired."""
    now = now or timezone.now()
    waiting = Task.objects.filter(series=OuterRef("pk"), status=Task.Status.RESERVED)
    horizon = now + timedelta(seconds=settings.RESERVATION_MAX_HORIZON)
    missing = Series.objects.filter(status=Series.Status.ACTIVE).exclude(Exists(waiting))
    missing = missing.exclude(next_task_pk__isnull=True, next_at__gt=horizon)
    stale = Series.objects.exclude(status=Series.Status.ACTIVE).filter(Exists(waiting))
    repaired = []
    for series_id in [*missing.values_list("pk", flat=True)[:RECONCILE_BATCH], *stale.values_list("pk", flat=True)]:
        try:
            with transaction.atomic():
                if _repair(series_id, now):
                    repaired.append(series_id)
        except (ReservemailError, DatabaseError) as exc:
            logger.error("reconcile: series_id=%s not repaired: %s", series_id, exc)
    if repaired:
        logger.warning("reconcile: series repaired %s", repaired[:20])
    return repaired


def _repair(series_id: int, now: datetime) -> bool:
    series = plan.lock(series_id)
    has_waiting = Task.objects.filter(series_id=series_id, status=Task.Status.RESERVED).exists()
    if series.status != Series.Status.ACTIVE:
        if not has_waiting:
            return False
        plan.cancel_waiting(series, now=now, why=f"series {series.status}")
        plan.save(series)
        return True
    if has_waiting:
        return False
    if series.next_task_pk is not None:
        gone = Task.objects.filter(pk=series.next_task_pk).values_list("status", flat=True).first()
        plan.log_line(
            series, f"occurrence task #{series.next_task_pk} is {gone or 'gone'}; the next one follows", now=now
        )
        plan.pass_next(series)
    plan.materialize(series, now=now, strict=False, reason="missed")
    return True
