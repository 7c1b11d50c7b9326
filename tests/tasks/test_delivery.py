"""The delivery pipeline (tasks.delivery: claim slices, send with the ownership check, settle) against
real Redis and a real SMTP sink."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from notifications.models import Notification
from tasks import scheduler, services, transitions
from tasks.delivery import TransientSendError, records
from tasks.delivery.claim import claim_slice
from tasks.delivery.send import Beat, SliceSender
from tasks.jobs import send_task
from tasks.models import Delivery, Task
from tests.tasks.input_cases import deep_json

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
    claimed = transitions.claim_due(now=timezone.now(), limit=3)
    assert claimed == [t.pk for t in tasks[:3]]
    assert (
        list(Task.objects.order_by("pk").values_list("status", "attempts"))
        == [("running", 1)] * 3 + [("reserved", 0)] * 3
    )


def test_claim_slice_leases_at_most_limit_and_a_second_claim_takes_the_rest(user):
    big = make_reserved(user, 1, recipients=[f"b{i}@example.com" for i in range(10)])[0]
    first = claim_slice(own_task_id=None, now=timezone.now(), limit=4)
    second = claim_slice(own_task_id=None, now=timezone.now(), limit=100)
    assert first.claimed == [big.pk] and not first.unleased  # 6 left: not worth a helper job
    assert [w.address for w in first.work] == [f"b{i}@example.com" for i in range(4)]
    assert [w.address for w in second.work] == [f"b{i}@example.com" for i in range(4, 10)]
    assert second.claimed == [] and first.token != second.token
    assert Delivery.objects.filter(task=big).count() == 10
    assert len(set(Delivery.objects.values_list("message_id", flat=True))) == 10
    assert claim_slice(own_task_id=None, now=timezone.now(), limit=100).work == []


def test_expired_lease_is_taken_over_and_the_old_holder_can_no_longer_send(user, settings):
    """A frozen worker's slice: once its lease ran out another worker takes it; the frozen one's check fails."""
    settings.HEARTBEAT_TIMEOUT = 30
    task = make_reserved(user, 1, recipients=["a@example.com", "b@example.com"])[0]
    frozen = claim_slice(own_task_id=None, now=timezone.now(), limit=10)
    assert claim_slice(own_task_id=None, now=timezone.now(), limit=10).work == []  # still leased
    later = timezone.now() + timedelta(seconds=31)
    taker = claim_slice(own_task_id=None, now=later, limit=10)
    assert [w.address for w in taker.work] == ["a@example.com", "b@example.com"]
    old = records.Claim(frozen.work[0].delivery_id, task.pk, frozen.tasks[task.pk].attempts, frozen.token)
    new = records.Claim(taker.work[0].delivery_id, task.pk, taker.tasks[task.pk].attempts, taker.token)
    assert records.settle_and_mark([], old).marked is False
    assert records.settle_and_mark([], new).marked is True
    assert Delivery.objects.get(pk=new.delivery_id).status == "sending"


def test_nothing_more_is_sent_of_a_task_stopped_after_the_claim(user, smtp):
    """The ownership check right before SMTP sees a stop that committed after the claim: no message goes out."""
    tasks = make_reserved(user, 3, recipients=["a@example.com", "b@example.com"])
    chunk = claim_slice(own_task_id=None, now=timezone.now(), limit=10)
    assert sorted(chunk.tasks) == [t.pk for t in tasks]
    outcome = services.cancel_task(owner=user, task_id=tasks[1].pk)
    assert (outcome.stopped, outcome.sent, outcome.total) == (True, 0, 2)
    result = SliceSender(chunk, Beat(), on_transient=lambda task, exc: None).run()
    assert result.sent == 4 and tasks[1].pk in result.stopped
    assert len(smtp.received) == 4 and not {r.message_id for r in smtp.received} & _ids(tasks[1])
    assert set(Delivery.objects.filter(task=tasks[1]).values_list("status", flat=True)) == {"canceled"}


def _ids(task):
    return set(Delivery.objects.filter(task=task).values_list("message_id", flat=True))


def test_transition_table_is_enforced_for_every_write(user):
    with pytest.raises(RuntimeError, match="finished->running"):
        transitions._allowed(["finished"], "running")
    assert transitions._allowed(["reserved", "queued"], "running") == ["reserved", "queued"]


def test_a_big_task_gets_helper_jobs_for_idle_workers(user, smtp, redis_conn, settings):
    settings.DELIVERY_SLICE_MIN = settings.DELIVERY_SLICE_MAX = 50
    task = make_reserved(user, 1, recipients=[f"h{i}@example.com" for i in range(300)])[0]
    redis_conn.sadd("rq:workers", "rq:worker:a", "rq:worker:b")  # two registered workers: one helper
    redis_conn.hset("rq:worker:a", "queues", "high")
    redis_conn.hset("rq:worker:b", "queues", "high")
    send_task(task.pk)
    assert Task.objects.get(pk=task.pk).status == "finished"
    assert len(smtp.received) == 300
    assert Job.fetch(f"{task.pk}-h0", connection=redis_conn).get_status() == "queued"
    send_task(task.pk)  # the helper job: its task ended, it does nothing
    assert len(smtp.received) == 300


def test_a_foreign_task_is_handed_back_with_a_job_of_its_own_after_a_transient_error(user, smtp, redis_conn):
    tasks = make_reserved(user, 3)
    smtp.handler.fail_queue.extend([None, "451 4.3.0 mailbox busy"])  # the second task's send fails once
    send_task(tasks[0].pk)
    failed = Task.objects.get(pk=tasks[1].pk)
    assert (failed.status, failed.attempts) == ("queued", 1)
    assert "451 4.3.0 mailbox busy; retrying (3 left)" in failed.log
    job = Job.fetch(str(failed.pk), connection=redis_conn)
    assert job.retries_left == 2  # the slice used the first attempt
    score = redis_conn.zscore(ScheduledJobRegistry("high", connection=redis_conn).key, str(failed.pk))
    assert score is not None and score <= timezone.now().timestamp() + 1
    assert [Task.objects.get(pk=t.pk).status for t in (tasks[0], tasks[2])] == ["finished", "finished"]
    assert Delivery.objects.get(task=failed).status == "pending"
    # Its own job (a QUEUED task now) sends it, never twice.
    send_task(failed.pk)
    assert Task.objects.get(pk=failed.pk).status == "finished"
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["r0@example.com", "r1@example.com", "r2@example.com"]


def test_the_jobs_own_transient_error_is_raised_after_sending_the_others(user, smtp):
    tasks = make_reserved(user, 3)
    smtp.handler.fail_queue.append("451 4.3.0 try later")  # the own task goes first and fails
    with pytest.raises(TransientSendError, match="451"):
        send_task(tasks[0].pk)
    own = Task.objects.get(pk=tasks[0].pk)
    assert (own.status, own.failed) == ("finished", True)  # outside RQ there are no retries left
    assert "giving up" in own.log
    assert [Task.objects.get(pk=t.pk).status for t in tasks[1:]] == ["finished", "finished"]
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["r1@example.com", "r2@example.com"]
    # The end notices the job held back are written although it ends with an error.
    progress = Notification.objects.get(owner=user, name="task_progress").payload["data"]
    assert {e["task_id"]: e["status"] for e in progress} == {t.pk: "finished" for t in tasks}


def test_end_notices_are_held_for_the_beat_and_written_once_when_the_job_ends(user, smtp, settings):
    """Each slice's finishes do not rewrite their owners' lists: a job's ends are merged in one write per beat."""
    settings.TASK_PROGRESS_INTERVAL = 600  # no beat during this job: every end waits for its end
    settings.DELIVERY_SLICE_MIN, settings.DELIVERY_SLICE_MAX = 3, 3
    tasks = make_reserved(user, 12)
    with CaptureQueriesContext(connection) as queries:
        send_task(tasks[0].pk)
    assert [row.status for row in Task.objects.order_by("pk")] == ["finished"] * 12
    assert len(smtp.received) == 12
    finishes = [q for q in queries if q["sql"].startswith("UPDATE") and "\"status\" = 'finished'" in q["sql"]]
    writes = [q for q in queries if 'UPDATE "notifications_notification"' in q["sql"]]  # "2 times: UPDATE" too
    assert len(finishes) >= 4  # four slices of three, each finished in its own transaction
    assert len(writes) == 1  # one executemany: both lists of the owner, once
    for name in ("task_progress", "task_reserve"):
        entries = Notification.objects.get(owner=user, name=name).payload["data"]
        assert {e["task_id"]: e["status"] for e in entries} == {t.pk: "finished" for t in tasks}


def test_a_job_that_waits_for_its_own_time_writes_the_end_notices_it_holds_first(user, other_user, smtp, settings):
    """Ends are not held through a wait: the other owner's page learns of them before the job's own task is due."""
    settings.TASK_PROGRESS_INTERVAL = 600  # no beat in this job
    done = make_reserved(other_user, 2)
    (own,) = make_reserved(user, 1, due=timezone.now() + timedelta(seconds=1.5))
    send_task(own.pk)
    assert [row.status for row in Task.objects.order_by("pk")] == ["finished"] * 3
    written = Notification.objects.get(owner=other_user, name="task_progress")
    assert {e["task_id"]: e["status"] for e in written.payload["data"]} == {t.pk: "finished" for t in done}
    assert written.timestamp < own.reserved_at.timestamp()  # before the wait for the own task ended


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


def test_send_now_task_is_sent_at_once_not_at_its_old_time(user, smtp, django_capture_on_commit_callbacks):
    task = make_reserved(user, 1, due=timezone.now() + timedelta(hours=1))[0]
    with django_capture_on_commit_callbacks(execute=True):
        services.send_now(owner=user, task_id=task.pk)
    send_task(task.pk)
    assert Task.objects.get(pk=task.pk).status == "finished"
    assert [r.rcpt_tos for r in smtp.received] == [["r0@example.com"]]


def test_an_old_reservation_whose_context_cannot_be_read_fails_alone(user, smtp):
    """A row stored before the input limits, its context too deep to decode, must not block the others' claims."""
    bad, good = make_reserved(user, 2)
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Task._meta.db_table} SET context = %s{cast} WHERE id = %s", [deep_json(990), bad.pk])  # noqa: S608
    send_task(bad.pk)
    rows = {t.pk: t for t in Task.objects.defer("context")}
    assert (rows[bad.pk].status, rows[bad.pk].failed) == ("finished", True)
    assert "context is nested too deeply" in rows[bad.pk].log
    assert (rows[good.pk].status, rows[good.pk].failed) == ("finished", False)
    assert [r.rcpt_tos[0] for r in smtp.received] == ["r1@example.com"]
