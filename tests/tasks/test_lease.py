"""tasks.delivery.lease: which recipients a claim may lease, and how much due work is counted.

The statements are plain SQL (built from the models' names), so these tests pin what they select,
on SQLite and (bin/test-pg) PostgreSQL alike.
"""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks.delivery.lease import due_backlog, lease
from tasks.models import Delivery, Task

pytestmark = pytest.mark.django_db


def make_task(user, status, *, recipients=0, due=None):  # noqa: ANN001, ANN201
    task = Task.objects.create(
        owner=user, status=status, reserved_at=due, template="welcome", context={}, recipients=["x@example.com"]
    )
    Delivery.objects.bulk_create(
        [Delivery(task=task, address=f"r{i}@example.com", message_id=f"<{task.pk}.{i}@t>") for i in range(recipients)]
    )
    return task


def leased(token):  # noqa: ANN001, ANN201
    return list(Delivery.objects.filter(lease_token=token).order_by("pk").values_list("address", flat=True))


def test_lease_takes_free_open_recipients_of_running_tasks_in_task_and_id_order(user):
    now = timezone.now()
    first, second = make_task(user, "running", recipients=3), make_task(user, "running", recipients=2)
    make_task(user, "reserved", recipients=2, due=now)  # not running: never leased
    rows = list(Delivery.objects.filter(task=first).order_by("pk"))
    Delivery.objects.filter(pk=rows[0].pk).update(status="sent")  # settled
    Delivery.objects.filter(pk=rows[1].pk).update(lease_token="other", lease_until=now + timedelta(seconds=30))  # held
    Delivery.objects.filter(pk=rows[2].pk).update(
        status="sending", lease_token="old", lease_until=now - timedelta(seconds=1)
    )  # lease ran out
    until = now + timedelta(seconds=15)
    with transaction.atomic():
        assert lease(token="mine", until=until, now=now, count=2) == 2
    assert leased("mine") == [
        "r2@example.com",
        "r0@example.com",
    ]  # the expired one of the first task, then the second's
    row = Delivery.objects.get(task=second, address="r0@example.com")
    assert row.lease_until == until
    with transaction.atomic():
        assert lease(token="more", until=until, now=now, count=10) == 1
    assert leased("more") == ["r1@example.com"]
    with transaction.atomic():
        assert lease(token="none", until=until, now=now, count=10) == 0


def test_lease_only_of_given_tasks_and_nothing_for_no_tasks_or_no_room(user):
    now = timezone.now()
    first, second = make_task(user, "running", recipients=2), make_task(user, "running", recipients=2)
    with transaction.atomic():
        assert lease(token="a", until=now, now=now, count=5, only=[]) == 0
        assert lease(token="a", until=now, now=now, count=0) == 0
        assert lease(token="a", until=now + timedelta(seconds=9), now=now, count=5, only=[second.pk]) == 2
    assert set(Delivery.objects.filter(lease_token="a").values_list("task_id", flat=True)) == {second.pk}
    assert not Delivery.objects.filter(task=first).exclude(lease_token="").exists()


def test_due_backlog_counts_due_reservations_in_grace_and_free_open_recipients(user, settings):
    now = timezone.now()
    settings.MISSED_GRACE_MINUTES = 10
    for _ in range(3):
        make_task(user, "reserved", due=now - timedelta(seconds=5))
    make_task(user, "reserved", due=now + timedelta(seconds=5))  # not yet due
    make_task(user, "reserved", due=now - timedelta(minutes=11))  # missed: the reconciler's
    running = make_task(user, "running", recipients=4)
    Delivery.objects.filter(task=running, address="r0@example.com").update(
        lease_token="x", lease_until=now + timedelta(seconds=9)
    )
    Delivery.objects.filter(task=running, address="r1@example.com").update(status="sent")
    assert due_backlog(now=now) == 3 + 2


def test_due_backlog_is_capped_per_kind(user, settings):
    settings.DELIVERY_SLICE_MAX = 1  # cap: 10 * 1 + 1 = 11 of each
    now = timezone.now()
    make_task(user, "running", recipients=15)
    Task.objects.bulk_create(
        [
            Task(
                owner=user,
                status="reserved",
                reserved_at=now,
                template="welcome",
                context={},
                recipients=["a@b.example"],
            )
            for _ in range(15)
        ]
    )
    assert due_backlog(now=now) == 22


def test_the_statements_use_the_indexes_on_sqlite(user):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's query plan")
    now = timezone.now()
    make_task(user, "running", recipients=2)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        due_backlog(now=now)
        lease(token="t", until=now, now=now, count=5)
    plans = []
    with connection.cursor() as cursor:
        for query in queries.captured_queries:
            if query["sql"].startswith("SELECT"):
                cursor.execute("EXPLAIN QUERY PLAN " + query["sql"])
                plans.append(" | ".join(row[-1] for row in cursor.fetchall()))
    assert "task_status_due" in plans[0] and "delivery_task_status" in plans[0], plans[0]
    assert "delivery_task_status" in plans[1], plans[1]
