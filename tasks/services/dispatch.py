"""Hand a committed task to the queue, and refuse the send when Redis cannot be reached."""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone
from django.utils.translation import gettext as _

from tasks import scheduler, transitions
from tasks.exceptions import QueueUnavailableError

logger = logging.getLogger(__name__)


def dispatch(*, task_id: int, due: datetime | None, queue_name: str) -> None:
    """Schedule (``due`` given) or enqueue the task's job; run from transaction.on_commit().

    If Redis is unreachable, the still-pending task is refused (CANCELED + failed, the reason in
    its log: tasks.transitions.refuse) and QueueUnavailableError reaches the caller: the send is
    refused, never left looking accepted. A process that dies before this runs is healed by the
    reconciler.
    """
    try:
        if due is None:
            scheduler.enqueue(task_id=task_id, queue_name=queue_name)
        else:
            scheduler.schedule(task_id=task_id, due=due, queue_name=queue_name)
    except scheduler.QueueError as exc:
        logger.error("queue unavailable task_id=%s error=%s", task_id, exc)
        transitions.refuse(task_id=task_id, reason=f"{type(exc).__name__}: {exc}", now=timezone.now())
        raise QueueUnavailableError(
            _("The mail queue is not reachable right now; nothing was sent. Please try again shortly.")
        ) from exc
