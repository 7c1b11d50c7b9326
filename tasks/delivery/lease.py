"""Leasing recipients nobody holds, and counting due work: the statements of every claim, in plain SQL.

A claim leases up to four times and the backlog is counted before every slice, so for lone
reservations (a day's spread of them) these statements are a large part of a worker's CPU. The
ORM spent several times each statement's own time compiling it (py-spy, the bench's spread row:
the lease 19% and the backlog count 12% of run_task, most of it in the compiler; the statements
alone ran in a tenth of that). They are written out here with the WHERE and ORDER BY the ORM
produced, which the indexes in tasks.models serve (delivery_task_status, task_status_due).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import connection

from reservemail.sql import columns, marks, table
from tasks.delivery.policy import backlog_cap
from tasks.models import OPEN_DELIVERY, Delivery, Task

RUNNING = Task.Status.RUNNING.value
OPEN = tuple(status.value for status in OPEN_DELIVERY)


@dataclass(frozen=True)
class _Names:
    delivery: str
    task: str
    d_pk: str  # delivery columns qualified by their table (the lease joins the task)
    d_task: str
    d_status: str
    d_until: str
    token: str  # unqualified, for SET
    until: str
    t_pk: str
    t_status: str
    t_due: str


@lru_cache(maxsize=2)
def _names(vendor: str) -> _Names:
    d_pk, d_task, d_status, d_until = columns(Delivery, "id", "task", "status", "lease_until", qualified=True)
    t_pk, t_status, t_due = columns(Task, "id", "status", "reserved_at", qualified=True)
    token, until = columns(Delivery, "lease_token", "lease_until")
    return _Names(table(Delivery), table(Task), d_pk, d_task, d_status, d_until, token, until, t_pk, t_status, t_due)


def _free(names: _Names, only: int) -> str:
    """FROM and WHERE of open deliveries of RUNNING tasks that nobody holds (or whose lease ran out).

    Params: now, the open statuses, RUNNING, then ``only`` task ids (none when 0).
    """
    where = (
        f"({names.d_until} IS NULL OR {names.d_until} < %s) AND {names.d_status} IN (%s, %s) AND {names.t_status} = %s"
    )
    if only:
        where += f" AND {names.d_task} IN ({marks(only)})"
    return f"{names.delivery} INNER JOIN {names.task} ON ({names.d_task} = {names.t_pk}) WHERE {where}"


def lease(*, token: str, until: datetime, now: datetime, count: int, only: list[int] | None = None) -> int:
    """Lease up to ``count`` open deliveries of RUNNING tasks (of ``only``, if given) that nobody holds.

    Runs inside the claim's transaction: PostgreSQL locks the rows it picks and skips those another
    claim has locked; SQLite's claim already holds the write lock. Returns how many it leased.
    """
    if count <= 0 or (only is not None and not only):
        return 0
    names = _names(connection.vendor)
    stamp = connection.ops.adapt_datetimefield_value(now)
    lock = ""
    if connection.features.has_select_for_update:
        lock = " " + connection.ops.for_update_sql(skip_locked=True, of=(names.delivery,))
    # The order of the delivery_task_status index; SQLite, which starts the join from the task, still
    # sorts the rows it picks (tests/tasks/test_lease.py shows its plan), as it did for the ORM's statement.
    order = f"{names.d_task}, {names.d_status}, {names.d_until}, {names.d_pk}"
    pick = f"SELECT {names.d_pk} FROM {_free(names, len(only or []))} ORDER BY {order} LIMIT {int(count)}{lock}"  # noqa: S608 - model names, bound values
    with connection.cursor() as cursor:
        cursor.execute(pick, [stamp, *OPEN, RUNNING, *(only or [])])
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return 0
        take = (
            f"UPDATE {names.delivery} SET {names.token} = %s, {names.until} = %s "  # noqa: S608 - model names, bound values
            f"WHERE ({names.d_until} IS NULL OR {names.d_until} < %s) AND {names.d_pk} IN ({marks(len(ids))}) "
            f"AND {names.d_status} IN (%s, %s)"
        )
        cursor.execute(take, [token, connection.ops.adapt_datetimefield_value(until), stamp, *ids, *OPEN])
        return cursor.rowcount


def due_backlog(*, now: datetime) -> int:
    """How much due work waits to be claimed: due reservations plus open recipients nobody holds.

    Counted up to backlog_cap() each: the slice size never depends on more, and counting every open
    recipient of a 100,000-recipient task before each slice would cost more than the slice. One
    statement; neither count orders its rows.
    """
    names = _names(connection.vendor)
    cap = int(backlog_cap())
    grace = now - timedelta(minutes=settings.MISSED_GRACE_MINUTES)
    adapt = connection.ops.adapt_datetimefield_value
    at = adapt(now)
    due = f"{names.t_due} >= %s AND {names.t_due} <= %s AND {names.t_status} = %s"
    reserved = f"SELECT 1 FROM {names.task} WHERE {due} LIMIT {cap}"  # noqa: S608 - model names, bound values
    waiting = f"SELECT 1 FROM {_free(names, 0)} LIMIT {cap}"  # noqa: S608 - model names, bound values
    count = f"SELECT (SELECT COUNT(*) FROM ({reserved}) AS reserved) + (SELECT COUNT(*) FROM ({waiting}) AS waiting)"  # noqa: S608 - model names, bound values
    with connection.cursor() as cursor:
        cursor.execute(count, [adapt(grace), at, Task.Status.RESERVED.value, at, *OPEN, RUNNING])
        (total,) = cursor.fetchone()
    return int(total)
