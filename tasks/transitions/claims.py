"""Claims: a QUEUED task, or a RESERVED one that is due, becomes RUNNING under a new attempt."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q

from tasks.models import Task
from tasks.transitions.table import S, _move


def claim_own(*, task_id: int, now: datetime) -> bool:
    """QUEUED, or RESERVED and due, -> RUNNING (attempts + 1): the job's own task. False if not claimable.

    A reservation whose time lies ahead (moved while its job was already released) is not claimed.
    """
    due = Q(status=S.QUEUED) | Q(status=S.RESERVED, reserved_at__lte=now)
    won = _move(
        sources=(S.QUEUED, S.RESERVED),
        target=S.RUNNING,
        where=due & Q(pk=task_id),
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
    )
    return bool(won)


def claim_due(*, now: datetime, limit: int, exclude: Sequence[int] = ()) -> list[int]:
    """RESERVED tasks due at ``now`` -> RUNNING (attempts + 1), soonest first, at most ``limit``; their ids.

    Call inside the claim's transaction: PostgreSQL locks the rows and skips ones another worker is
    claiming; SQLite's IMMEDIATE transaction holds the write lock. So every id returned was moved
    by this call and by no one else. Reservations later than the missed-send grace are left to
    their own jobs and the reconciler, which mark them missed.
    """
    if limit <= 0:
        return []
    grace = now - timedelta(minutes=settings.MISSED_GRACE_MINUTES)
    ids = list(
        Task.objects.select_for_update(skip_locked=True)
        .filter(status=S.RESERVED, reserved_at__lte=now, reserved_at__gte=grace)
        .exclude(pk__in=list(exclude))
        .order_by("reserved_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    if not ids:
        return []
    won = _move(
        sources=(S.RESERVED,),
        target=S.RUNNING,
        where=Q(pk__in=ids, reserved_at__lte=now),
        started_at=now,
        heartbeat_at=now,
        attempts=F("attempts") + 1,
    )
    if won != len(ids):  # cannot happen under the locks; roll back rather than guess
        raise RuntimeError(f"claimed {won} of {len(ids)} locked tasks")
    return ids
