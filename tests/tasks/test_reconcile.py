"""The reconciler against the real test Redis: what it repairs, what it leaves alone."""

from datetime import UTC, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone
from rq.job import Job

from notifications.models import Notification
from tasks import scheduler, services, transitions
from tasks.delivery import records
from tasks.delivery.policy import max_attempts
from tasks.jobs import send_task
from tasks.mail import MailSpec
from tasks.models import Delivery, Task
from tests.harness import free_port

pytestmark = pytest.mark.django_db

ONE = MailSpec(template="welcome", recipients=("a@example.com",), context={})


def make_task(user, *, status, age=10, **fields):
    task = Task.objects.create(
        owner=user, status=status, description="r", template="welcome", recipients=["a@example.com"], **fields
    )
    Task.objects.filter(pk=task.pk).update(created_at=timezone.now() - timedelta(seconds=age))
    return task


def test_reconcile_schedules_reservation_whose_job_is_missing(user, redis_conn):
    due = timezone.now() + timedelta(minutes=5, microseconds=300)
    task = make_task(user, status="reserved", reserved_at=due)
    report = services.reconcile_tasks()
    assert report.scheduled == [task.pk] and report.redis_ok
    assert scheduler.job_state(task_id=task.pk) == "scheduled"
    assert scheduler.due_time(task_id=task.pk) == scheduler.release_time(due)
    assert services.reconcile_tasks().scheduled == []  # a second pass finds nothing to do


def test_reconcile_leaves_scheduled_job_alone(user, django_capture_on_commit_callbacks, fast_lead):
    due = timezone.now() + timedelta(minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        task = services.reserve_task(owner=user, scheduled_at=due, mail=ONE, description="ok")
    Task.objects.filter(pk=task.pk).update(created_at=timezone.now() - timedelta(seconds=10))
    report = services.reconcile_tasks()
    assert (report.checked, report.changed) == (1, False)
    assert scheduler.due_time(task_id=task.pk) == scheduler.release_time(due)


def test_reconcile_skips_rows_still_waiting_for_their_dispatch(user):
    make_task(user, status="queued", age=0)
    assert services.reconcile_tasks().enqueued == []


def test_reconcile_queues_queued_task_without_job(user):
    task = make_task(user, status="queued", queue="default")
    assert services.reconcile_tasks().enqueued == [task.pk]
    assert scheduler.job_state(task_id=task.pk) == "queued"


def test_reconcile_queues_due_reservation_within_grace_at_once(user):
    task = make_task(user, status="reserved", reserved_at=timezone.now() - timedelta(minutes=30), queue="high")
    assert services.reconcile_tasks().scheduled == [task.pk]
    assert scheduler.job_state(task_id=task.pk) == "queued"
    assert Task.objects.get(pk=task.pk).status == "reserved"


def test_reconcile_marks_reservation_beyond_grace_missed_and_tells_owner(user):
    task = make_task(user, status="reserved", reserved_at=timezone.now() - timedelta(minutes=61))
    assert services.reconcile_tasks().missed == [task.pk]
    task.refresh_from_db()
    assert (task.status, task.failed) == ("canceled", True)
    assert "missed: due" in task.log and "later than the 60-minute grace; not sent" in task.log
    entry = Notification.objects.get(owner=user, name="task_reserve").payload["data"][0]
    assert (entry["task_id"], entry["status"], entry["failed"]) == (task.pk, "canceled", True)
    assert scheduler.job_state(task_id=task.pk) is None


def test_job_of_reservation_beyond_grace_marks_it_missed_instead_of_sending(user, settings):
    settings.MISSED_GRACE_MINUTES = 1
    task = make_task(user, status="reserved", reserved_at=timezone.now() - timedelta(minutes=2))
    send_task(task.pk)
    task.refresh_from_db()
    assert (task.status, task.failed, task.attempts) == ("canceled", True, 0)
    assert "missed: due" in task.log


def test_reconcile_recovers_running_task_whose_worker_died(user, settings):
    settings.HEARTBEAT_TIMEOUT = 30
    beat = timezone.now() - timedelta(seconds=31)
    task = make_task(user, status="running", attempts=1, heartbeat_at=beat, started_at=beat, queue="default")
    report = services.reconcile_tasks()
    assert report.recovered == [task.pk]
    task.refresh_from_db()
    assert task.status == "queued" and "attempt 1: worker lost (no heartbeat for 31s); retrying" in task.log
    assert scheduler.job_state(task_id=task.pk) == "queued"


def test_reconcile_fails_running_task_without_attempts_left(user, settings):
    settings.HEARTBEAT_TIMEOUT = 30
    beat = timezone.now() - timedelta(seconds=40)
    task = make_task(user, status="running", attempts=max_attempts(), heartbeat_at=beat, started_at=beat)
    assert services.reconcile_tasks().failed == [task.pk]
    task.refresh_from_db()
    assert (task.status, task.failed) == ("finished", True)
    assert "worker lost (no heartbeat for 40s); giving up" in task.log


def test_reconcile_leaves_running_task_with_fresh_heartbeat(user):
    task = make_task(user, status="running", attempts=1, heartbeat_at=timezone.now(), started_at=timezone.now())
    assert not services.reconcile_tasks().changed
    assert Task.objects.get(pk=task.pk).status == "running"


def test_reconcile_replaces_job_left_started_by_a_dead_worker(user, settings, redis_conn):
    settings.HEARTBEAT_TIMEOUT = 30
    task = make_task(user, status="queued", age=60, queue="default")
    scheduler.enqueue(task_id=task.pk, queue_name="default")
    job = Job.fetch(str(task.pk), connection=redis_conn)
    job.set_status("started")
    assert services.reconcile_tasks().enqueued == [task.pk]
    assert scheduler.job_state(task_id=task.pk) == "queued"


def test_reconcile_releases_jobs_the_scheduler_left_behind(user, redis_conn):
    task = make_task(user, status="reserved", reserved_at=timezone.now() - timedelta(seconds=20), queue="high")
    scheduler.schedule(task_id=task.pk, due=timezone.now() - timedelta(seconds=20))
    report = services.reconcile_tasks()
    assert report.released == [task.pk]
    assert scheduler.job_state(task_id=task.pk) == "queued"
    assert redis_conn.lrange("rq:queue:high", 0, -1) == [str(task.pk).encode()]


def test_heartbeat_of_an_attempt_taken_over_stops_it(user, settings):
    """A worker frozen past HEARTBEAT_TIMEOUT is fenced off by the attempt number: its writes match nothing."""
    settings.HEARTBEAT_TIMEOUT = 30
    task = make_task(user, status="queued")
    assert transitions.claim_own(task_id=task.pk, now=timezone.now())
    frozen = Task.objects.get(pk=task.pk)
    Task.objects.filter(pk=task.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=60))
    assert services.reconcile_tasks().recovered == [task.pk]
    assert transitions.claim_own(task_id=task.pk, now=timezone.now())  # another worker, attempt 2
    delivery = Delivery.objects.create(task_id=task.pk, address="a@example.com", message_id="<m@x>", lease_token="old")
    claim = records.Claim(delivery_id=delivery.pk, task_id=task.pk, attempt=frozen.attempts, token="old")
    assert records.settle_and_mark([], claim).marked is False  # the frozen attempt's ownership check matches nothing
    assert Task.objects.get(pk=task.pk).attempts == 2
    assert Delivery.objects.get(pk=delivery.pk).status == "pending"


def test_reconcile_without_redis_still_recovers_stuck_rows(user, settings, monkeypatch):
    settings.HEARTBEAT_TIMEOUT = 30
    for config in settings.RQ_QUEUES.values():
        monkeypatch.setitem(config, "URL", f"redis://127.0.0.1:{free_port()}/0")
    beat = timezone.now() - timedelta(seconds=60)
    task = make_task(user, status="running", attempts=1, heartbeat_at=beat, started_at=beat)
    report = services.reconcile_tasks()
    assert report.redis_ok is False and report.recovered == [task.pk]
    assert Task.objects.get(pk=task.pk).status == "queued"  # queued again by a pass once Redis answers


def test_reconcile_command_prints_summary(user, capsys):
    task = make_task(user, status="queued")
    call_command("reconcile_tasks")
    assert f"enqueued=1[{task.pk}]" in capsys.readouterr().out


def test_reservation_sent_now_is_sent_at_once(user, smtp, fast_lead, django_capture_on_commit_callbacks):
    """send_now turns a reservation into a QUEUED task: its job must not wait for the old time."""
    with django_capture_on_commit_callbacks(execute=True):
        task = services.reserve_task(
            owner=user, scheduled_at=timezone.now() + timedelta(minutes=10), mail=ONE, description="now"
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.send_now(owner=user, task_id=task.pk)
    send_task(task.pk)
    assert Task.objects.get(pk=task.pk).status == "finished"
    assert len(smtp.received) == 1


def test_reconcile_breaks_the_lock_of_a_dead_scheduler_only(redis_conn):
    redis_conn.set("rq:scheduler-lock:high", "dead-one", ex=60)
    redis_conn.hset("rq:scheduler:dead-one", mapping={"last_heartbeat": "2020-01-01T00:00:00.000000Z"})
    redis_conn.set("rq:scheduler-lock:default", "live-one", ex=60)
    now = timezone.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    redis_conn.hset("rq:scheduler:live-one", mapping={"last_heartbeat": now})
    assert services.reconcile_tasks().locks_broken == ["high"]
    assert redis_conn.get("rq:scheduler-lock:high") is None
    assert redis_conn.get("rq:scheduler-lock:default") == b"live-one"


def test_reconcile_requeues_job_popped_but_never_started(user, settings, redis_conn):
    """Redis died right after a worker popped the job: it sits in RQ's intermediate list, "queued"."""
    settings.HEARTBEAT_TIMEOUT = 30
    task = make_task(user, status="queued", age=60, queue="default")
    scheduler.enqueue(task_id=task.pk, queue_name="default")
    redis_conn.lmove("rq:queue:default", "rq:queue:default:intermediate")
    assert services.reconcile_tasks().enqueued == [task.pk]
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [str(task.pk).encode()]
    assert redis_conn.lrange("rq:queue:default:intermediate", 0, -1) == []


def test_reconcile_leaves_long_queued_job_waiting_in_its_list(user, settings):
    settings.HEARTBEAT_TIMEOUT = 30
    task = make_task(user, status="queued", age=60, queue="default")
    scheduler.enqueue(task_id=task.pk, queue_name="default")
    assert not services.reconcile_tasks().changed
