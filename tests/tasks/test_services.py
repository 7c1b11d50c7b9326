"""Service tests against the real test database and the real Redis server of this run."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from notifications.models import Notification
from tasks import scheduler, services, transitions
from tasks.exceptions import QueueUnavailableError, ReservationError, TaskNotFoundError, TaskStateError
from tasks.mail import MailSpec
from tasks.models import Delivery, Task
from tests.callbacks import queue_calls

pytestmark = pytest.mark.django_db

MAIL = MailSpec(template="welcome", recipients=("a@example.com", "b@example.com"), context={"name": "A"})


def scheduled_score(conn, task_id, queue="high"):
    return conn.zscore(ScheduledJobRegistry(queue, connection=conn).key, str(task_id))


def reserve(user, capture, *, seconds=600, **kw):
    due = timezone.now() + timedelta(seconds=seconds)
    with capture(execute=True):
        task = services.reserve_task(owner=user, scheduled_at=due, mail=MAIL, description="June news", **kw)
    return task, due


def test_reserve_task_creates_row_and_schedules_job_released_before_due(
    user, redis_conn, django_capture_on_commit_callbacks, settings
):
    settings.JOB_RELEASE_LEAD = 1.0
    due = timezone.now().replace(microsecond=400_000) + timedelta(minutes=10)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        task = services.reserve_task(owner=user, scheduled_at=due, mail=MAIL, description="June news")
    assert len(queue_calls(callbacks)) == 1
    task.refresh_from_db()
    assert (task.status, task.reserved_at, task.failed, task.queue) == ("reserved", due, False, "high")
    assert task.recipients == ["a@example.com", "b@example.com"]
    # rq keeps whole seconds: the job is released at floor(due - lead), before its time; the job
    # then waits for the exact due time (never early).
    assert scheduled_score(redis_conn, task.pk) == int(due.timestamp()) - 1
    job = Job.fetch(str(task.pk), connection=redis_conn)
    assert job.args == (task.pk,)
    assert job.func_name == "tasks.jobs.send_task"
    assert job.retries_left == 3
    entry = Notification.objects.get(owner=user, name="task_reserve").payload["data"][0]
    assert entry["task_id"] == task.pk and entry["status"] == "reserved"


def test_reserve_task_invalid_input_writes_nothing(user, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ReservationError, match="at least 60"):
        services.reserve_task(
            owner=user, scheduled_at=timezone.now() + timedelta(seconds=5), mail=MAIL, description="x"
        )
    assert callbacks == []  # nothing was written: not even a notification
    assert Task.objects.count() == 0
    assert redis_conn.keys("rq:job:*") == []


def test_reserve_rolled_back_leaves_no_job(user, redis_conn):
    from django.db import transaction

    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        services.reserve_task(
            owner=user, scheduled_at=timezone.now() + timedelta(minutes=5), mail=MAIL, description="x"
        )
        raise Boom
    assert Task.objects.count() == 0
    assert redis_conn.keys("rq:*") == []


def test_enqueue_task_puts_job_on_default_queue(user, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        task = services.enqueue_task(owner=user, mail=MAIL, description="now")
    task.refresh_from_db()
    assert task.status == "queued" and task.reserved_at is None
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [str(task.pk).encode()]


def test_enqueue_task_with_redis_down_records_failure(user, settings, django_capture_on_commit_callbacks):
    from tests.harness import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings.RQ_QUEUES = {name: {**config, "URL": dead} for name, config in settings.RQ_QUEUES.items()}
    with pytest.raises(QueueUnavailableError, match="not reachable"), django_capture_on_commit_callbacks(execute=True):
        services.enqueue_task(owner=user, mail=MAIL, description="now")
    task = Task.objects.get()
    assert (task.status, task.failed) == ("canceled", True)
    assert "queue unavailable, not sent" in task.log


def test_cancel_reserve_cancels_row_and_removes_job(user, redis_conn, django_capture_on_commit_callbacks):
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.cancel_reserve(owner=user, task_id=task.pk)
    task.refresh_from_db()
    assert result.task.status == task.status == "canceled"
    assert (result.stopped, result.message) == (False, f"Mail #{task.pk} canceled; nothing was sent.")
    assert task.ended_at is not None
    assert scheduled_score(redis_conn, task.pk) is None
    assert not redis_conn.exists(f"rq:job:{task.pk}")
    entry = Notification.objects.get(owner=user, name="task_reserve").payload["data"][0]
    assert entry["status"] == "canceled"


def test_cancel_reserve_on_canceled_task_is_a_conflict_and_changes_nothing(user, django_capture_on_commit_callbacks):
    """Exactly one cancel wins: a second one answers 409 (task_canceled), so a client never counts two."""
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_reserve(owner=user, task_id=task.pk)
    before = Task.objects.values("ended_at", "log").get(pk=task.pk)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(TaskStateError) as caught:
        services.cancel_reserve(owner=user, task_id=task.pk)
    assert caught.value.code == "task_canceled"
    assert Task.objects.values("ended_at", "log").get(pk=task.pk) == before
    assert callbacks == []  # nothing was written: not even a notification


def test_cancel_reserve_of_other_user_is_not_found(user, other_user, django_capture_on_commit_callbacks):
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    with pytest.raises(TaskNotFoundError):
        services.cancel_reserve(owner=other_user, task_id=task.pk)
    assert Task.objects.get(pk=task.pk).status == "reserved"


def test_cancel_reserve_of_running_task_raises(user, django_capture_on_commit_callbacks):
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    Task.objects.filter(pk=task.pk).update(status="running")
    with pytest.raises(TaskStateError, match="already being sent"):
        services.cancel_reserve(owner=user, task_id=task.pk)
    assert Task.objects.get(pk=task.pk).status == "running"


def _running_with(user, statuses):
    task = Task.objects.create(
        owner=user,
        status="running",
        attempts=1,
        description="r",
        template="welcome",
        recipients=[f"r{i}@example.com" for i in range(len(statuses))],
        progress=10,  # a heartbeat's figure from before the last sends
    )
    for i, status in enumerate(statuses):
        Delivery.objects.create(task=task, address=f"r{i}@example.com", message_id=f"<{i}@x>", status=status)
    return task


def test_cancel_task_stops_running_task_and_says_what_went_out(user, django_capture_on_commit_callbacks):
    task = _running_with(user, ["sent", "sending", "pending", "pending"])
    with django_capture_on_commit_callbacks(execute=True):
        result = services.cancel_task(owner=user, task_id=task.pk)
    task.refresh_from_db()
    assert (result.stopped, result.sent, result.total) == (True, 2, 4)
    assert result.message == f"Mail #{task.pk} stopped: 2 of 4 sent."
    assert task.status == "canceled" and "stopped by alice: 2 of 4 sent" in task.log
    assert task.progress == 50  # what went out, not the last heartbeat's figure
    entry = Notification.objects.get(owner=user, name="task_progress").payload["data"][0]
    assert (entry["status"], entry["progress"]) == ("canceled", 50)
    statuses = list(Delivery.objects.filter(task=task).order_by("pk").values_list("status", flat=True))
    assert statuses == ["sent", "sending", "canceled", "canceled"]


def test_cancel_task_with_every_recipient_sent_is_already_sent(user, django_capture_on_commit_callbacks):
    """Never "canceled" with all of its deliveries sent: the answer is 409 task_already_sent, nothing changes."""
    task = _running_with(user, ["sent", "sending"])
    with pytest.raises(TaskStateError) as caught:
        services.cancel_task(owner=user, task_id=task.pk)
    assert caught.value.code == "task_already_sent"
    task.refresh_from_db()
    assert task.status == "running" and "stopped" not in task.log


def test_cancel_task_of_finished_task_raises(user, django_capture_on_commit_callbacks):
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    Task.objects.filter(pk=task.pk).update(status="finished")
    with pytest.raises(TaskStateError, match="already finished"):
        services.cancel_task(owner=user, task_id=task.pk)


def test_claim_after_cancel_does_nothing(user, django_capture_on_commit_callbacks):
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.cancel_reserve(owner=user, task_id=task.pk)
    assert transitions.claim_own(task_id=task.pk, now=timezone.now()) is False
    assert Task.objects.get(pk=task.pk).status == "canceled"


def test_claim_is_won_once(user, django_capture_on_commit_callbacks):
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    Task.objects.filter(pk=task.pk).update(reserved_at=timezone.now())  # due now
    assert transitions.claim_own(task_id=task.pk, now=timezone.now()) is True
    assert transitions.claim_own(task_id=task.pk, now=timezone.now()) is False
    task.refresh_from_db()
    assert (task.status, task.attempts) == ("running", 1)


def test_claim_refuses_reservation_not_yet_due(user, django_capture_on_commit_callbacks):
    """A job released early (or a task moved while its job waited) can never send before reserved_at."""
    task, _ = reserve(user, django_capture_on_commit_callbacks, seconds=90)
    assert transitions.claim_own(task_id=task.pk, now=timezone.now()) is False
    task.refresh_from_db()
    assert (task.status, task.attempts, task.started_at) == ("reserved", 0, None)


def test_reschedule_task_moves_job(user, redis_conn, django_capture_on_commit_callbacks, settings):
    settings.JOB_RELEASE_LEAD = 1.0
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    new_due = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.reschedule_task(owner=user, task_id=task.pk, scheduled_at=new_due)
    task.refresh_from_db()
    assert result.reserved_at == task.reserved_at == new_due
    assert scheduled_score(redis_conn, task.pk) == int(new_due.timestamp()) - 1
    assert "rescheduled from" in task.log
    assert len(redis_conn.zrange(ScheduledJobRegistry("high", connection=redis_conn).key, 0, -1)) == 1


def test_reschedule_task_validates_time(user, django_capture_on_commit_callbacks):
    task, due = reserve(user, django_capture_on_commit_callbacks)
    with pytest.raises(ReservationError, match="within 365 days"):
        services.reschedule_task(owner=user, task_id=task.pk, scheduled_at=timezone.now() + timedelta(days=400))
    assert Task.objects.get(pk=task.pk).reserved_at == due


def test_reschedule_running_task_raises(user, django_capture_on_commit_callbacks):
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    Task.objects.filter(pk=task.pk).update(status="running")
    with pytest.raises(TaskStateError):
        services.reschedule_task(owner=user, task_id=task.pk, scheduled_at=timezone.now() + timedelta(hours=1))


def test_send_now_turns_reservation_into_queued_job(user, redis_conn, django_capture_on_commit_callbacks):
    task, _ = reserve(user, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        result = services.send_now(owner=user, task_id=task.pk)
    assert result.status == "queued"
    assert scheduled_score(redis_conn, task.pk) is None
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [str(task.pk).encode()]


def test_schedule_twice_keeps_one_job(user, redis_conn, django_capture_on_commit_callbacks):
    task, due = reserve(user, django_capture_on_commit_callbacks)
    scheduler.schedule(task_id=task.pk, due=due)
    assert redis_conn.zcard(ScheduledJobRegistry("high", connection=redis_conn).key) == 1
