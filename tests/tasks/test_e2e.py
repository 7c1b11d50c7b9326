"""End to end: real worker subprocesses (with the RQ scheduler), real Redis, real SMTP on loopback."""

import io
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rq.registry import ScheduledJobRegistry

from tasks import services
from tasks.mail import MailSpec
from tasks.models import Delivery, Task
from tests.harness import wait_until

pytestmark = [pytest.mark.e2e]

TWO = MailSpec(template="welcome", recipients=("a@example.com", "b@example.com"), context={"name": "E2E"})


def wait_status(task_id, statuses, timeout=20):
    return wait_until(
        lambda: Task.objects.filter(pk=task_id, status__in=statuses).first(), timeout=timeout, what=f"{statuses}"
    )


def test_immediate_send_arrives(transactional_db, user, worker, smtp):
    task = services.enqueue_task(owner=user, mail=TWO, description="now")
    done = wait_status(task.pk, ["finished"])
    assert done.failed is False and done.progress == 100
    wait_until(lambda: len(smtp.received) == 2, timeout=5)
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["a@example.com", "b@example.com"]
    assert smtp.received[0].message["Subject"] == "Welcome to reservemail, E2E"


def test_reservation_arrives_on_time_not_before(transactional_db, user, fast_lead, worker, smtp):
    due = timezone.now() + timedelta(seconds=3.4)
    task = services.reserve_task(owner=user, scheduled_at=due, mail=TWO, description="soon")
    wait_status(task.pk, ["finished"], timeout=20)
    wait_until(lambda: len(smtp.received) == 2, timeout=5)
    arrivals = [r.at for r in smtp.received]
    assert min(arrivals) >= due.timestamp(), "a mail arrived before its reservation time"
    assert max(arrivals) <= due.timestamp() + 2.0, f"late by {max(arrivals) - due.timestamp():.2f}s"


def test_canceled_reservation_never_arrives(transactional_db, user, fast_lead, worker, smtp, redis_conn):
    due = timezone.now() + timedelta(seconds=2)
    task = services.reserve_task(owner=user, scheduled_at=due, mail=TWO, description="cancel me")
    assert redis_conn.zscore(ScheduledJobRegistry("high", connection=redis_conn).key, str(task.pk)) is not None
    services.cancel_reserve(owner=user, task_id=task.pk)
    assert not redis_conn.exists(f"rq:job:{task.pk}")
    assert redis_conn.zscore(ScheduledJobRegistry("high", connection=redis_conn).key, str(task.pk)) is None
    # Wait past the due time plus the scheduler's polling interval and the worker's pickup.
    wait_until(lambda: timezone.now() > due + timedelta(seconds=3), timeout=10)
    assert smtp.received == []
    assert Task.objects.get(pk=task.pk).status == "canceled"


def test_reschedule_moves_delivery(transactional_db, user, fast_lead, worker, smtp):
    first = timezone.now() + timedelta(seconds=2)
    task = services.reserve_task(owner=user, scheduled_at=first, mail=TWO, description="move me")
    later = timezone.now() + timedelta(seconds=5.5)
    services.reschedule_task(owner=user, task_id=task.pk, scheduled_at=later)
    wait_status(task.pk, ["finished"], timeout=20)
    wait_until(lambda: len(smtp.received) == 2, timeout=5)
    assert min(r.at for r in smtp.received) >= later.timestamp()


def test_transient_failure_is_retried_without_duplicates(transactional_db, user, worker, smtp):
    smtp.handler.fail_queue.extend([None, "451 4.3.0 mailbox busy"])  # a@ passes, b@ fails once
    task = services.enqueue_task(owner=user, mail=TWO, description="retry")
    done = wait_status(task.pk, ["finished"], timeout=30)
    assert done.failed is False
    assert done.attempts == 2
    assert "451 4.3.0 mailbox busy; retrying" in done.log
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["a@example.com", "b@example.com"]
    assert set(Delivery.objects.filter(task=task).values_list("status", flat=True)) == {"sent"}


def test_permanent_failure_marks_task_failed(transactional_db, user, worker, smtp):
    smtp.handler.fail_queue.extend(["550 5.7.1 message rejected", "550 5.7.1 message rejected"])
    task = services.enqueue_task(owner=user, mail=TWO, description="rejected")
    done = wait_status(task.pk, ["finished"], timeout=20)
    assert done.failed is True and done.attempts == 1
    assert "permanent failure a@example.com: 550 5.7.1 message rejected" in done.log
    assert smtp.received == []


def test_worker_pass_repairs_what_is_due_soon_and_the_command_repairs_the_rest(
    transactional_db, user, worker_factory, redis_server
):
    """Redis restarted empty: a worker's pass re-creates the job of a reservation due within
    RECONCILE_HORIZON (600 s) and leaves one two months ahead to a later pass; the command takes all."""
    now = timezone.now()
    near = services.reserve_task(owner=user, scheduled_at=now + timedelta(minutes=5), mail=TWO, description="near")
    far = services.reserve_task(owner=user, scheduled_at=now + timedelta(days=60), mail=TWO, description="far")
    Task.objects.filter(pk__in=[near.pk, far.pk]).update(created_at=now - timedelta(seconds=30))  # settled rows
    redis_server.kill()
    redis_server.restart()
    client = redis_server.client()
    assert not client.exists(f"rq:job:{near.pk}") and not client.exists(f"rq:job:{far.pk}")
    worker_factory(extra_env={"RECONCILE_INTERVAL": "1", "WORKER_MAINTENANCE_INTERVAL": "1"})
    wait_until(lambda: client.exists(f"rq:job:{near.pk}"), timeout=20, what="the worker's pass")
    time.sleep(2.5)  # the pass that re-created the near job read both rows; two more passes
    assert not client.exists(f"rq:job:{far.pk}"), "a worker's pass looked beyond its horizon"
    call_command("reconcile_tasks", stdout=io.StringIO())
    assert client.exists(f"rq:job:{far.pk}")
    assert Task.objects.get(pk=far.pk).status == "reserved"
