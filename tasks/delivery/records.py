"""The per-recipient writes of the send loop: the ownership check right before SMTP, and each outcome.

These run once or twice per mail at close to the SMTP limit, so they are plain SQL built once per
process (the ORM spends several times a statement's own time building these UPDATEs; measured
~550 us against ~100 us per recipient on a loaded 2-core machine). One transaction records the
previous recipient's outcome, checks that the recipient whose text waits is still ours, and checks
ownership of the next, so a mail costs one commit (on PostgreSQL one statement, see
_in_one_statement).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
class Hold:
    """A recipient whose message the relay has accepted for DATA and whose text is not written yet.

    Checked before the text goes out: still leased to this slice and still being sent. A takeover
    (another lease) or a hand-back (tasks.transitions) that committed first fails it, and the text
    is never written; a stop leaves it, and the message goes out as the stop counted it.
    """

    delivery_id: int
    token: str


@dataclass(frozen=True)
class Checked:
    """What settle_and_mark found: the claimed recipient taken for sending, the held one still ours."""

    marked: bool = False
    held: bool = False


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


@lru_cache(maxsize=4)
def _hold_sql(vendor: str) -> str:
    pk, status, token = columns(Delivery, "id", "status", "lease_token")
    lock = " FOR UPDATE" if vendor == "postgresql" else ""  # SQLite: the transaction holds the write lock
    return f"SELECT 1 FROM {table(Delivery)} WHERE {pk} = %s AND {token} = %s AND {status} = %s{lock}"  # noqa: S608


def _hold_params(hold: Hold) -> Params:
    return [hold.delivery_id, hold.token, D.SENDING.value]


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


def settle_and_mark(records: Sequence[Record], claim: Claim | None, hold: Hold | None = None) -> Checked:
    """Record ``records``, check ``hold`` is still ours, and take ``claim``'s recipient for sending; one transaction.

    The ownership check is one conditional statement: the delivery is still leased by us, not yet
    settled, and its task is RUNNING under our attempt. A cancel, stop or takeover that committed
    first makes it match nothing (``marked`` False: do not send); one that commits after sees
    ``sending``. ``held`` says whether the held recipient's text may still be written (see Hold).
    """
    if not records and claim is None and hold is None:
        return Checked()
    recorded = _record_statements(records, timezone.now())
    if connection.vendor == "postgresql":
        return _in_one_statement(recorded, claim, hold)
    if connection.vendor == "sqlite" and not connection.in_atomic_block and connection.get_autocommit():
        return _on_the_driver(recorded, claim, hold)
    with transaction.atomic(), connection.cursor() as cursor:
        return _steps(cursor, recorded, claim, hold, str)


def _steps(
    cursor: Any,
    recorded: list[tuple[str, Params]],
    claim: Claim | None,
    hold: Hold | None,
    sql_for: Callable[[str], str],
) -> Checked:
    """The records, the hold's check and the ownership check, one statement after another on ``cursor``.

    ``sql_for`` turns a statement into the cursor's placeholder style (Django's ``%s`` as is, or _qmark).
    """
    for sql, params in recorded:
        cursor.execute(sql_for(sql), params)
    held = False
    if hold is not None:
        cursor.execute(sql_for(_hold_sql(connection.vendor)), _hold_params(hold))
        held = cursor.fetchone() is not None
    if claim is None:
        return Checked(held=held)
    cursor.execute(sql_for(_mark_sql(connection.vendor)), _mark_params(claim))
    return Checked(marked=bool(cursor.rowcount), held=held)


def _on_the_driver(recorded: list[tuple[str, Params]], claim: Claim | None, hold: Hold | None) -> Checked:
    """SQLite: the records and the checks in one IMMEDIATE transaction, on the driver's own connection.

    Why: Django's atomic() and cursor wrappers took twice the statements' own time here (measured:
    150-180 us against 58 us per mail: docs/performance.md), and this runs once per mail. The
    statements and the write lock are the same as through the ORM; errors come out as Django's
    (wrap_database_errors). Inside a caller's atomic block the ORM path joins that transaction.
    """
    connection.ensure_connection()
    driver = connection.connection
    with connection.wrap_database_errors:
        driver.execute("BEGIN IMMEDIATE")
        try:
            checked = _steps(driver.cursor(), recorded, claim, hold, _qmark)
            driver.execute("COMMIT")
        except BaseException:
            try:
                driver.rollback()  # none of it was written
            except Exception:  # noqa: BLE001 - the original error is the one to raise; reconnect next time
                connection.close()
            raise
    return checked


@lru_cache(maxsize=16)
def _qmark(sql: str) -> str:
    """``sql`` with the driver's own placeholders (the statements here hold no literal %)."""
    return sql.replace("%s", "?")


def _in_one_statement(recorded: list[tuple[str, Params]], claim: Claim | None, hold: Hold | None) -> Checked:
    """PostgreSQL: the records, the hold's check and the ownership check as WITH queries of one statement.

    A statement outside a transaction block commits by itself: one round trip to the server per
    mail instead of five (BEGIN, the UPDATEs and the check, COMMIT). The WITH queries run on one
    snapshot and always to completion; the records touch other rows than the checks (the
    recipients settled before these), and the ownership check keeps its WHERE and its row lock as
    in the SQLite path; the hold's check locks its row, so a takeover committing meanwhile is seen.
    """
    parts = [(f"settled_{i}", sql, params) for i, (sql, params) in enumerate(recorded)]
    found = []
    if hold is not None:
        parts.append(("held", _hold_sql(connection.vendor), _hold_params(hold)))
        found.append("(SELECT COUNT(*) FROM held)")
    else:
        found.append("0")
    if claim is not None:
        parts.append(("marked", _mark_sql(connection.vendor) + " RETURNING 1", _mark_params(claim)))
        found.append("(SELECT COUNT(*) FROM marked)")
    else:
        found.append("0")
    head = ", ".join(f"{name} AS ({sql})" for name, sql, _ in parts)
    params = [param for _, _, part_params in parts for param in part_params]
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {head} SELECT {', '.join(found)}", params)
        held, marked = cursor.fetchone()
    return Checked(marked=bool(marked), held=bool(held))


def renew(*, token: str, until: datetime) -> int:
    """Extend this slice's lease on its open deliveries; returns how many it still holds."""
    return Delivery.objects.filter(lease_token=token, status__in=(D.PENDING, D.SENDING)).update(lease_until=until)


def release(*, token: str) -> int:
    """Give up this slice's lease on deliveries it did not send, so any worker can take them at once."""
    return Delivery.objects.filter(lease_token=token, status=D.PENDING).update(lease_token="", lease_until=None)
