"""The per-recipient writes of the send loop: the ownership check right before SMTP, and each outcome.

These run once or twice per mail at close to the SMTP limit, so they are plain SQL built once per
process (the ORM spends several times a statement's own time building these UPDATEs; measured
~550 us against ~100 us per recipient on a loaded 2-core machine). One transaction records the
previous recipient's outcome and checks ownership of the next, so a mail costs one commit (on
PostgreSQL one statement, see _in_one_statement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from reservemail.sql import columns, table
from tasks.models import RUN_FENCE_INDEX, Delivery, Task

D = Delivery.Status
Params = list[Any]  # a statement's bound values


@dataclass(frozen=True)
class Claim:
    """What the ownership check needs: this worker's lease and the task's attempt it sends under."""

    delivery_id: int
    task_id: int
    attempt: int
    token: str


@dataclass(frozen=True)
class Record:
    """The outcome of one recipient's send: SENT, FAILED (5xx), SUPPRESSED, or PENDING again (a transient error)."""

    delivery_id: int
    status: str
    error: str = ""


@lru_cache(maxsize=4)
def _mark_sql(vendor: str) -> str:
    quote = connection.ops.quote_name
    delivery, task = table(Delivery), table(Task)
    pk, status, token, task_id = columns(Delivery, "id", "status", "lease_token", "task")
    t_pk, t_status, t_attempts = columns(Task, "id", "status", "attempts")
    # SQLite would read the task's row by its rowid, and status and attempts lie behind the recipients'
    # overflow pages there (O(recipients) per check); the covering index answers without the row.
    # PostgreSQL keeps a big value out of line (TOAST) and reads the row as it is.
    fence = f" INDEXED BY {quote(RUN_FENCE_INDEX)}" if vendor == "sqlite" else ""
    return (
        f"UPDATE {delivery} SET {status} = %s WHERE {pk} = %s AND {token} = %s AND {status} IN (%s, %s) "  # noqa: S608
        f"AND {task_id} = %s AND EXISTS (SELECT 1 FROM {task}{fence} WHERE {t_pk} = %s AND {t_status} = %s "
        f"AND {t_attempts} = %s)"
    )


@lru_cache(maxsize=8)
def _record_sql(vendor: str, keep_lease: bool) -> str:
    pk, status, error, sent_at, token, until = columns(
        Delivery, "id", "status", "error", "sent_at", "lease_token", "lease_until"
    )
    # Not fenced by the lease: a message that went out is recorded as sent by whoever sent it, so a
    # worker that took the recipient over finds it settled and does not send it again. A transient
    # failure (back to PENDING) keeps its lease: its task stays RUNNING until the sender hands it
    # back, and an unleased recipient of a RUNNING task would be taken and sent by another worker
    # under the same attempt. tasks.transitions.hand_back drops the lease together with the task's move.
    lease = "" if keep_lease else f", {token} = '', {until} = NULL"
    return (
        f"UPDATE {table(Delivery)} SET {status} = %s, {error} = %s, {sent_at} = %s{lease} "  # noqa: S608
        f"WHERE {pk} = %s AND {status} IN (%s, %s)"
    )


def _mark_params(claim: Claim) -> Params:
    params: Params = [D.SENDING.value, claim.delivery_id, claim.token, D.PENDING.value, D.SENDING.value]
    return params + [claim.task_id, claim.task_id, Task.Status.RUNNING.value, claim.attempt]


def _record_statements(records: Sequence[Record], now: datetime) -> list[tuple[str, Params]]:
    stamp = connection.ops.adapt_datetimefield_value(now)
    statements = []
    for record in records:
        sent_at = stamp if record.status in (D.SENT, D.SUPPRESSED) else None
        params = [record.status, record.error[:1000], sent_at, record.delivery_id, D.PENDING.value, D.SENDING.value]
        statements.append((_record_sql(connection.vendor, record.status == D.PENDING), params))
    return statements


def settle_and_mark(records: Sequence[Record], claim: Claim | None) -> bool:
    """Record ``records`` and, if ``claim`` is given, take that recipient for sending; one transaction.

    The ownership check is one conditional statement: the delivery is still leased by us, not yet
    settled, and its task is RUNNING under our attempt. A cancel, stop or takeover that committed
    first makes it match nothing (False: do not send); one that commits after sees ``sending``.
    """
    if not records and claim is None:
        return False
    recorded = _record_statements(records, timezone.now())
    if connection.vendor == "postgresql":
        return _in_one_statement(recorded, claim)
    with transaction.atomic(), connection.cursor() as cursor:
        for sql, params in recorded:
            cursor.execute(sql, params)
        if claim is None:
            return False
        cursor.execute(_mark_sql(connection.vendor), _mark_params(claim))
        return bool(cursor.rowcount)


def _in_one_statement(recorded: list[tuple[str, Params]], claim: Claim | None) -> bool:
    """PostgreSQL: the records as data-modifying WITH queries of the ownership check, one statement.

    A statement outside a transaction block commits by itself: one round trip to the server per
    mail instead of four (BEGIN, the two UPDATEs, COMMIT). The WITH queries and the check run on
    one snapshot and always to completion; they touch other rows than the check (the recipients
    settled before this one), and the check keeps its WHERE and its row lock as in the SQLite path.
    """
    head = ", ".join(f"settled_{i} AS ({sql})" for i, (sql, _) in enumerate(recorded))
    main = _mark_sql(connection.vendor) if claim is not None else "SELECT 1"
    params = [param for _, statement_params in recorded for param in statement_params]
    params += _mark_params(claim) if claim is not None else []
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {head} {main}" if head else main, params)
        return claim is not None and bool(cursor.rowcount)


def renew(*, token: str, until: datetime) -> int:
    """Extend this slice's lease on its open deliveries; returns how many it still holds."""
    return Delivery.objects.filter(lease_token=token, status__in=(D.PENDING, D.SENDING)).update(lease_until=until)


def release(*, token: str) -> int:
    """Give up this slice's lease on deliveries it did not send, so any worker can take them at once."""
    return Delivery.objects.filter(lease_token=token, status=D.PENDING).update(lease_token="", lease_until=None)
