"""Hand a committed task to the queue, and record it on the row when Redis cannot be reached."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks import scheduler
from tasks.exceptions import QueueUnavailableError
from tasks.models import PENDING, Task
from tasks.services.notify import notify_ended

logger = logging.getLogger(__name__)


def append_log(line: str) -> Concat:
    """An expression that appends a time-stamped line to ``Task.log`` in the same UPDATE."""
    stamp = timezone.now().strftime("%Y-%m-%dT%H:%M:%S%z")
    return Concat(F("log"), Value(f"{stamp} {line}\n"))


def dispatch(*, task_id: int, due: datetime | None, queue_name: str) -> None:
    """Schedule (``due`` given) or enqueue the task's job; run from transaction.on_commit().

    If Redis is unreachable, the still-pending task becomes CANCELED with ``failed`` set and the
    reason in its log, and QueueUnavailableError reaches the caller: the send is refused, never
    left looking accepted. A process that dies before this runs is healed by the reconciler.
    """
    try:
        if due is None:
            scheduler.enqueue(task_id=task_id, queue_name=queue_name)
        else:
            scheduler.schedule(task_id=task_id, due=due, queue_name=queue_name)
    except scheduler.QueueError as exc:
        logger.error("queue unavailable task_id=%s error=%s", task_id, exc)
        refused = Task.objects.filter(pk=task_id, status__in=PENDING).update(
            status=Task.Status.CANCELED,
            failed=True,
            ended_at=timezone.now(),
            log=append_log(f"queue unavailable, not sent: {type(exc).__name__}: {exc}"),
        )
        if refused:
            notify_ended(Task.objects.get(pk=task_id))  # the page must not keep counting down to it
        raise QueueUnavailableError(
            _("The mail queue is not reachable right now; nothing was sent. Please try again shortly.")
        ) from exc
