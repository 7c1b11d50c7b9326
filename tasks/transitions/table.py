"""The transition table check and the helpers every transition writes through.

``_move`` is the conditional update, its sources checked against ``tasks.models.TRANSITIONS``;
beside it the log line appended in the same UPDATE, the reload for log record and notification,
the attempt fence of a RUNNING task, giving a task's open deliveries back, and ending an attempt
(move, give back, reload) as a failure, a hand-back and the reconciler's recovery all do.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import F, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from tasks.logfields import LOG_STAMP
from tasks.models import TRANSITIONS, Delivery, Task
from tasks.selectors import with_context_text

S = Task.Status
D = Delivery.Status


def append_log(line: str) -> Concat:
    """An expression that appends a time-stamped line to ``Task.log`` in the same UPDATE."""
    stamp = timezone.now().strftime(LOG_STAMP)
    return Concat(F("log"), Value(f"{stamp} {line}\n"))


def note(*, task_id: int, line: str) -> None:
    """Append a line to the task's log without changing its status (e.g. a queue error while moving it)."""
    Task.objects.filter(pk=task_id).update(log=append_log(line))


def _allowed(sources: Iterable[str], target: str) -> list[str]:
    """The sources, after checking that the transition table allows each of them to become ``target``."""
    sources = list(sources)
    for source in sources:
        if target not in TRANSITIONS[source]:
            raise RuntimeError(f"transition {source}->{target} is not in Task.TRANSITIONS")
    return sources


def _move(*, sources: Iterable[str], target: str, where: Q, **fields: object) -> int:
    return Task.objects.filter(where, status__in=_allowed(sources, target)).update(status=target, **fields)


def _reload(task_id: int) -> Task:
    """The row after a transition, for its log record, notification and answer; the context as stored text.

    Why: a row stored before the input limits may hold a context too deep for the json module,
    and a transition (failing or canceling that very task, say) must not trip over it; the API's
    answer reads ``context_text`` (tasks.selectors.with_context_text).
    """
    return with_context_text(Task.objects.defer("recipients")).get(pk=task_id)


def _running(task_id: int, attempt: int) -> Q:
    return Q(pk=task_id, attempts=attempt)


def _give_back_deliveries(task_id: int) -> int:
    """The task's open deliveries become PENDING without a lease, so no worker's ownership check matches them."""
    return Delivery.objects.filter(task_id=task_id, status__in=(D.PENDING, D.SENDING)).update(
        status=D.PENDING, lease_token="", lease_until=None
    )


def _end_attempt(*, task_id: int, where: Q, target: str, line: str, now: datetime) -> Task | None:
    """RUNNING -> ``target`` (QUEUED for a retry, or FINISHED + failed) under ``where``, with ``line`` logged.

    The attempt's open deliveries are given back in the same transaction (the caller's), so a worker
    still sending the task fails its next ownership check. Returns the row after the move, or None
    when another actor moved the task first.
    """
    fields: dict[str, object] = {"failed": True, "ended_at": now} if target == S.FINISHED else {}
    if not _move(sources=(S.RUNNING,), target=target, where=where, log=append_log(line), **fields):
        return None
    _give_back_deliveries(task_id)
    return _reload(task_id)
