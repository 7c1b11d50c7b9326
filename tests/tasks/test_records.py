"""The send loop's per-recipient writes (tasks.delivery.records): outcomes and the ownership check, in one go.

Run on SQLite and on PostgreSQL (bin/test-pg); on PostgreSQL they are one statement (data-modifying WITH).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import ProgrammingError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks.delivery import records
from tasks.delivery.claim import Slice, claim_slice
from tasks.models import Delivery, Task
from tests.tasks.test_delivery import make_reserved

# Transactional: the worker calls these in autocommit, not inside a transaction (on SQLite that is
# the driver-level path; see test_inside_a_callers_transaction_the_writes_join_it for the other).
pytestmark = pytest.mark.django_db(transaction=True)

D = Delivery.Status


@pytest.fixture
def chunk(user) -> Slice:
    """One RUNNING task of four recipients, claimed and leased to one slice."""
    make_reserved(user, 1, recipients=[f"r{i}@example.com" for i in range(4)])
    claimed = claim_slice(own_task_id=None, now=timezone.now(), limit=10)
    assert len(claimed.work) == 4
    return claimed


def claim(chunk: Slice, i: int, **changes) -> records.Claim:
    work = chunk.work[i]
    fields = {
        "delivery_id": work.delivery_id,
        "task_id": work.task_id,
        "attempt": chunk.tasks[work.task_id].attempts,
        "token": chunk.token,
    }
    return records.Claim(**{**fields, **changes})


def row(chunk: Slice, i: int) -> Delivery:
    return Delivery.objects.get(pk=chunk.work[i].delivery_id)


def test_an_outcome_and_the_next_check_go_together(chunk):
    assert records.settle_and_mark([], claim(chunk, 0)).marked is True
    assert row(chunk, 0).status == D.SENDING
    assert records.settle_and_mark([records.Record(chunk.work[0].delivery_id, D.SENT)], claim(chunk, 1)).marked is True
    sent, sending = row(chunk, 0), row(chunk, 1)
    assert (sent.status, sent.error, sent.lease_token, sent.lease_until) == (D.SENT, "", "", None)
    assert sent.sent_at is not None and abs(sent.sent_at - timezone.now()) < timedelta(seconds=30)
    assert (sending.status, sending.lease_token) == (D.SENDING, chunk.token)


def test_each_outcome_is_written_as_it_should_be_and_no_check_means_false(chunk):
    for i in range(4):
        assert records.settle_and_mark([], claim(chunk, i)).marked is True
    outcomes = [
        records.Record(chunk.work[0].delivery_id, D.FAILED, "550 no such user"),
        records.Record(chunk.work[1].delivery_id, D.PENDING, "421 try again later"),
        records.Record(chunk.work[2].delivery_id, D.SUPPRESSED),
        records.Record(chunk.work[3].delivery_id, D.SENT),
    ]
    assert records.settle_and_mark(outcomes, None).marked is False
    failed, again, suppressed, sent = (row(chunk, i) for i in range(4))
    assert (failed.status, failed.error, failed.sent_at, failed.lease_token) == (D.FAILED, "550 no such user", None, "")
    # A transient failure keeps its lease: the task stays RUNNING until its sender hands it back.
    assert (again.status, again.error, again.sent_at) == (D.PENDING, "421 try again later", None)
    assert (again.lease_token, again.lease_until is not None) == (chunk.token, True)
    assert suppressed.status == D.SUPPRESSED and suppressed.sent_at is not None and suppressed.lease_token == ""
    assert sent.status == D.SENT and sent.sent_at is not None


def test_an_outcome_never_overwrites_a_settled_recipient(chunk):
    Delivery.objects.filter(pk=chunk.work[0].delivery_id).update(status=D.CANCELED, lease_token="", lease_until=None)
    assert records.settle_and_mark([records.Record(chunk.work[0].delivery_id, D.SENT)], None).marked is False
    assert (row(chunk, 0).status, row(chunk, 0).sent_at) == (D.CANCELED, None)


@pytest.mark.parametrize(
    "lose",
    [
        pytest.param(lambda chunk, task: Task.objects.filter(pk=task).update(status="canceled"), id="task stopped"),
        pytest.param(lambda chunk, task: Task.objects.filter(pk=task).update(attempts=9), id="another attempt"),
        pytest.param(
            lambda chunk, task: Delivery.objects.filter(lease_token=chunk.token).update(lease_token="theirs"),
            id="lease taken over",
        ),
        pytest.param(
            lambda chunk, task: Delivery.objects.filter(pk=chunk.work[1].delivery_id).update(status=D.CANCELED),
            id="recipient canceled",
        ),
    ],
)
def test_a_lost_check_takes_nothing_and_the_outcome_still_lands(chunk, lose):
    assert records.settle_and_mark([], claim(chunk, 0)).marked is True
    lose(chunk, chunk.work[0].task_id)
    assert records.settle_and_mark([records.Record(chunk.work[0].delivery_id, D.SENT)], claim(chunk, 1)).marked is False
    assert row(chunk, 0).status == D.SENT  # it went out: recorded whoever holds the task now
    assert row(chunk, 1).status != D.SENDING


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's one statement")
def test_the_check_is_one_statement_on_postgresql(chunk):
    outcome = records.Record(chunk.work[0].delivery_id, D.SENT)
    assert records.settle_and_mark([], claim(chunk, 0)).marked is True
    with CaptureQueriesContext(connection) as queries:
        assert records.settle_and_mark([outcome], claim(chunk, 1)).marked is True
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith(("WITH", "UPDATE"))]
    assert len(queries.captured_queries) == 1 and writes[0].startswith("WITH settled_0 AS (UPDATE")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's driver-level transaction")
def test_on_sqlite_the_outcome_and_the_check_are_one_immediate_transaction(chunk):
    outcome = records.Record(chunk.work[0].delivery_id, D.SENT)
    assert records.settle_and_mark([], claim(chunk, 0)).marked is True
    with driver_statements() as statements:
        assert records.settle_and_mark([outcome], claim(chunk, 1)).marked is True
    assert [sql.split()[0] for sql in statements] == ["BEGIN", "UPDATE", "UPDATE", "COMMIT"]
    assert statements[0] == "BEGIN IMMEDIATE"  # the write lock first: no upgrade from a read lock to fail
    assert (row(chunk, 0).status, row(chunk, 1).status) == (D.SENT, D.SENDING)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's driver-level transaction")
def test_a_failed_statement_leaves_nothing_written_and_the_connection_usable(chunk):
    outcome = records.Record(chunk.work[0].delivery_id, D.SENT)
    assert records.settle_and_mark([], claim(chunk, 0)).marked is True
    bad = claim(chunk, 1, attempt=object())
    with pytest.raises(ProgrammingError):  # Django's class, not the driver's: it cannot bind an object
        records.settle_and_mark([outcome], bad)
    assert row(chunk, 0).status == D.SENDING  # the outcome went with the failed transaction
    assert records.settle_and_mark([outcome], claim(chunk, 1)).marked is True
    assert (row(chunk, 0).status, row(chunk, 1).status) == (D.SENT, D.SENDING)


@pytest.mark.django_db
def test_inside_a_callers_transaction_the_writes_join_it(chunk):
    outcome = records.Record(chunk.work[0].delivery_id, D.SENT)
    with transaction.atomic():
        assert records.settle_and_mark([], claim(chunk, 0)).marked is True
        assert records.settle_and_mark([outcome], claim(chunk, 1)).marked is True
        assert (row(chunk, 0).status, row(chunk, 1).status) == (D.SENT, D.SENDING)  # seen inside it
        transaction.set_rollback(True)
    assert (row(chunk, 0).status, row(chunk, 1).status) == (D.PENDING, D.PENDING)


@contextmanager
def driver_statements() -> Iterator[list[str]]:
    """Every statement SQLite's driver runs meanwhile (what the ORM's query log does not see)."""
    seen: list[str] = []
    connection.ensure_connection()
    connection.connection.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        connection.connection.set_trace_callback(None)


def hold(chunk: Slice, i: int) -> records.Hold:
    return records.Hold(delivery_id=chunk.work[i].delivery_id, token=chunk.token)


def test_a_held_recipient_is_still_ours_while_leased_here_and_being_sent(chunk):
    assert records.settle_and_mark([], claim(chunk, 0)).marked is True
    checked = records.settle_and_mark([], claim(chunk, 1), hold(chunk, 0))
    assert (checked.held, checked.marked) == (True, True)
    assert records.settle_and_mark([], None, hold(chunk, 1)) == records.Checked(marked=False, held=True)


@pytest.mark.parametrize(
    "lose",
    [
        pytest.param(
            lambda chunk: Delivery.objects.filter(lease_token=chunk.token).update(lease_token="theirs"),
            id="taken over",
        ),
        pytest.param(
            lambda chunk: Delivery.objects.filter(lease_token=chunk.token).update(status=D.PENDING, lease_token=""),
            id="handed back",
        ),
    ],
)
def test_a_held_recipient_taken_over_or_handed_back_is_not_ours(chunk, lose):
    assert records.settle_and_mark([], claim(chunk, 0)).marked is True
    lose(chunk)
    checked = records.settle_and_mark([], None, hold(chunk, 0))
    assert checked == records.Checked(marked=False, held=False)


def test_a_stop_leaves_the_held_recipient_to_go_out_as_it_counted_it(chunk):
    assert records.settle_and_mark([], claim(chunk, 0)).marked is True
    Task.objects.filter(pk=chunk.work[0].task_id).update(status="canceled")  # the stop counted it as sent
    checked = records.settle_and_mark([], claim(chunk, 1), hold(chunk, 0))
    assert (checked.held, checked.marked) == (True, False)


def test_outcome_hold_and_check_are_one_statement_on_postgresql(chunk):
    assert records.settle_and_mark([], claim(chunk, 0)).marked is True
    assert records.settle_and_mark([], claim(chunk, 1)).marked is True
    outcome = records.Record(chunk.work[0].delivery_id, D.SENT)
    with CaptureQueriesContext(connection) as queries:
        checked = records.settle_and_mark([outcome], claim(chunk, 2), hold(chunk, 1))
    assert (checked.held, checked.marked) == (True, True)
    assert row(chunk, 0).status == D.SENT and row(chunk, 2).status == D.SENDING
    if connection.vendor == "postgresql":
        assert len(queries.captured_queries) == 1
        assert "held AS (SELECT 1" in queries.captured_queries[0]["sql"]
