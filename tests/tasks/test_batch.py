"""Batches of due reservations (tasks.services.batch) against real Redis and a real SMTP sink."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from notifications.models import Notification
from tasks import scheduler, services
from tasks.jobs import send_task
from tasks.models import Delivery, Task
from tasks.services import batch
from tasks.services.run import TransientSendError

pytestmark = pytest.mark.django_db


def make_reserved(user, n, *, due=None, recipients=None):
    due = due or timezone.now() - timedelta(seconds=1)
    return [
        Task.objects.create(
            owner=user,
            status="reserved",
            reserved_at=due + timedelta(milliseconds=i),
            queue="high",
            description=f"news {i}",
            template="welcome",
            context={"name": "Ann"},
            recipients=list(recipients or [f"r{i}@example.com"]),
        )
        for i in range(n)
    ]


def test_one_job_sends_every_due_reservation_of_its_queue(user, smtp):
    tasks = make_reserved(user, 5)
    later = make_reserved(user, 1, due=timezone.now() + timedelta(minutes=5))[0]
    send_task(tasks[2].pk)
    rows = {t.pk: t for t in Task.objects.all()}
    for task in tasks:
        row = rows[task.pk]
        assert (row.status, row.progress, row.failed, row.attempts) == ("finished", 100, False, 1)
        assert "attempt 1: sent 1, failed 0" in row.log
    assert rows[later.pk].status == "reserved" and rows[later.pk].attempts == 0
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == [f"r{i}@example.com" for i in range(5)]
    sent_ids = set(Delivery.objects.filter(status="sent").values_list("message_id", flat=True))
    assert {r.message_id for r in smtp.received} == sent_ids
    assert all(r.at >= t.reserved_at.timestamp() for r, t in zip(smtp.received, tasks, strict=True))
    progress = Notification.objects.get(owner=user, name="task_progress").payload["data"]
    assert {e["task_id"]: e["status"] for e in progress} == {t.pk: "finished" for t in tasks}


def test_claim_due_takes_soonest_due_up_to_limit(user):
    tasks = make_reserved(user, 5)
    make_reserved(user, 1, due=timezone.now() + timedelta(seconds=30))
    claimed = batch.claim_due(queue="high", now=timezone.now(), limit=3)
    assert [t.pk for t in claimed] == [t.pk for t in tasks[:3]]
    assert all(t.status == "running" and t.attempts == 1 for t in claimed)
    assert list(Task.objects.order_by("pk").values_list("status", flat=True)) == ["running"] * 3 + ["reserved"] * 3
    assert batch.claim_due(queue="default", now=timezone.now(), limit=10) == []


def test_batch_sends_nothing_more_to_a_task_canceled_after_the_claim(user, smtp, settings):
    settings.TASK_PROGRESS_INTERVAL = 0  # look for cancels before every recipient
    tasks = make_reserved(user, 3, recipients=["a@example.com", "b@example.com"])
    claimed = batch.claim_due(queue="high", now=timezone.now(), limit=10)
    services.cancel_task(owner=user, task_id=tasks[1].pk)
    assert batch.send_batch(claimed, own_task_id=tasks[0].pk) is None
    statuses = dict(Task.objects.values_list("pk", "status"))
    assert [statuses[t.pk] for t in tasks] == ["finished", "canceled", "finished"]
    assert Delivery.objects.filter(task=tasks[1], status="pending").count() == 2
    assert len(smtp.received) == 4


def test_batch_hands_back_a_foreign_task_after_a_transient_error(user, smtp, redis_conn):
    tasks = make_reserved(user, 3)
    smtp.handler.fail_queue.extend([None, "451 4.3.0 mailbox busy"])  # the second task's send fails once
    send_task(tasks[0].pk)
    failed = Task.objects.get(pk=tasks[1].pk)
    assert (failed.status, failed.attempts) == ("queued", 1)
    assert "451 4.3.0 mailbox busy; retrying (3 left)" in failed.log
    job = Job.fetch(str(failed.pk), connection=redis_conn)
    assert job.retries_left == 2  # the batch used the first attempt
    score = redis_conn.zscore(ScheduledJobRegistry("high", connection=redis_conn).key, str(failed.pk))
    assert score is not None and score <= timezone.now().timestamp() + 1
    assert [Task.objects.get(pk=t.pk).status for t in (tasks[0], tasks[2])] == ["finished", "finished"]
    assert Delivery.objects.get(task=failed).status == "pending"
    # Its own job (a QUEUED task now) sends it through the one-task path, never twice.
    send_task(failed.pk)
    assert Task.objects.get(pk=failed.pk).status == "finished"
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["r0@example.com", "r1@example.com", "r2@example.com"]


def test_batch_raises_the_own_tasks_transient_error_after_sending_the_others(user, smtp):
    tasks = make_reserved(user, 3)
    smtp.handler.fail_queue.append("451 4.3.0 try later")  # the own task goes first and fails
    with pytest.raises(TransientSendError, match="451"):
        send_task(tasks[0].pk)
    own = Task.objects.get(pk=tasks[0].pk)
    assert (own.status, own.failed) == ("finished", True)  # outside RQ there are no retries left
    assert "giving up" in own.log
    assert [Task.objects.get(pk=t.pk).status for t in tasks[1:]] == ["finished", "finished"]
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["r1@example.com", "r2@example.com"]


def test_discard_jobs_removes_waiting_jobs_only(user, redis_conn):
    now = timezone.now()
    scheduler.schedule(task_id=101, due=now + timedelta(minutes=5), queue_name="high")
    scheduler.enqueue(task_id=102, queue_name="high")
    assert scheduler.discard_jobs(task_ids=[101, 102, 103], queue_name="high") == 2
    assert not redis_conn.exists("rq:job:101") and not redis_conn.exists("rq:job:102")
    assert redis_conn.lrange("rq:queue:high", 0, -1) == []
    assert redis_conn.zrange(ScheduledJobRegistry("high", connection=redis_conn).key, 0, -1) == []


def test_release_time_is_whole_seconds_before_due(settings):
    settings.JOB_RELEASE_LEAD = 1.0
    due = timezone.now().replace(microsecond=250_000)
    released = scheduler.release_time(due)
    assert released.timestamp() == int(due.timestamp()) - 1
    settings.JOB_RELEASE_LEAD = 0
    assert scheduler.release_time(due).timestamp() == int(due.timestamp())
    settings.JOB_RELEASE_LEAD = -1  # plain round-up, for comparison
    assert scheduler.release_time(due).timestamp() == int(due.timestamp()) + 1


def test_batching_off_sends_only_the_jobs_own_task(user, smtp, settings):
    settings.TASK_BATCH_SIZE = 1
    tasks = make_reserved(user, 3)
    send_task(tasks[1].pk)
    assert [Task.objects.get(pk=t.pk).status for t in tasks] == ["reserved", "finished", "reserved"]
    assert [r.rcpt_tos for r in smtp.received] == [["r1@example.com"]]


def test_send_now_task_is_sent_at_once_not_at_its_old_time(user, smtp, django_capture_on_commit_callbacks):
    task = make_reserved(user, 1, due=timezone.now() + timedelta(hours=1))[0]
    with django_capture_on_commit_callbacks(execute=True):
        services.send_now(owner=user, task_id=task.pk)
    send_task(task.pk)
    assert Task.objects.get(pk=task.pk).status == "finished"
    assert [r.rcpt_tos for r in smtp.received] == [["r0@example.com"]]
