"""Delete old ended tasks (FINISHED, CANCELED) and their deliveries: the data-retention rule."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import Coalesce

from tasks.models import ENDED, Delivery, Task

logger = logging.getLogger(__name__)


def purgeable_tasks(*, older_than_days: int, now: datetime) -> QuerySet[Task]:
    """Return ended tasks whose end (or, lacking one, creation) is more than ``older_than_days`` ago.

    Raises ValueError for fewer than one day, so a typo cannot delete today's history.
    """
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1")
    cutoff = now - timedelta(days=older_than_days)
    return (
        Task.objects.filter(status__in=ENDED).alias(ended=Coalesce("ended_at", "created_at")).filter(ended__lt=cutoff)
    )


def purge_finished_tasks(*, older_than_days: int, now: datetime, batch_size: int = 500) -> tuple[int, int]:
    """Delete purgeable tasks and their deliveries in batches; return (tasks, deliveries) deleted.

    Each batch is its own transaction, so a large purge never holds long locks against the
    workers; a task is only ever deleted whole (its deliveries first, in the same batch). Pending
    and running tasks are never touched, whatever their age.
    """
    tasks = deliveries = 0
    candidates = purgeable_tasks(older_than_days=older_than_days, now=now)
    while True:
        with transaction.atomic():
            ids = list(candidates.order_by("pk").values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            deliveries += Delivery.objects.filter(task_id__in=ids).delete()[0]
            tasks += Task.objects.filter(pk__in=ids, status__in=ENDED).delete()[0]
    logger.info("purged tasks=%s deliveries=%s older_than_days=%s", tasks, deliveries, older_than_days)
    return tasks, deliveries
