"""Fault cases 3, 4, 5, 10: Redis emptied, stopped or frozen; rollbacks and crashes around the queue call."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from tasks import scheduler, services
from tasks.models import Task
from tests.conftest import database_url
from tests.faults.conftest import TIMEOUT, arrival_by_task, claimed_early, lateness, one, reserve_many, size
from tests.faults.oracle import classify, lateness_figures, report
from tests.harness import ROOT, wait_until, worker_env

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(TIMEOUT)]


def _all_have_jobs(task_ids: list[int]) -> bool:
    pending = list(Task.objects.filter(pk__in=task_ids, status=Task.Status.RESERVED).values_list("pk", flat=True))
    jobs = scheduler.inspect_jobs(pending)
    return all(info.status is not None for info in jobs.values())


def test_redis_restarted_empty_reconciler_restores_every_reservation(rig, owners, capsys):
    """Case 3: Redis without persistence is killed and restarted empty while reservations are pending;
    the workers' reconciler schedules every one again from the database: all sent once, none early."""
    rng = random.Random(3)
    rig.start_redis("none")
    rig.start_worker("a")
    rig.start_worker("b")
    count = size(300, 5000)
    lead = 12 + count * 0.012
    ids = reserve_many(owners, count, lead, lead + 15 + count * 0.02, tag="empty", rng=rng)
    assert _all_have_jobs(ids)
    rig.redis.client().set("rm:test:before-restart", 1)
    rig.redis.kill()
    rig.redis.restart()
    back = time.monotonic()
    # Emptied: the marker is gone (the workers may already have reconnected and registered).
    assert not rig.redis.client().exists("rm:test:before-restart")
    wait_until(lambda: _all_have_jobs(ids), timeout=60, interval=0.2, what="reconciler to reschedule")
    recover_s = round(time.monotonic() - back, 2)
    rig.wait_ended(ids, timeout=lead + 15 + count * 0.02 + 120)
    classes = classify(ids, rig.sink.received)
    late = lateness(ids, rig.sink)
    counts = report("3 redis restarted empty", classes, capsys, **lateness_figures(late), recover_s=recover_s)
    assert counts["exactly_once"] == count, counts
    assert lateness_figures(late)["early"] == 0 and claimed_early(ids) == 0


def test_redis_stopped_across_due_times(rig, owners, capsys):
    """Case 4: Redis (AOF everysec) stopped for 15 s while reservations fall due, some mails in
    flight when it stops: every one is delivered within G seconds after Redis returns, where
    G = 15 s, plus 1 s per 20 mails that fell due during the outage beyond 300 (the backlog's
    drain at full size)."""
    rng = random.Random(4)
    rig.start_redis("everysec")
    rig.start_worker("a")
    rig.start_worker("b")
    count = size(100, 1000)
    ids = reserve_many(owners, count, 4, 4 + 12 + count * 0.01, tag="down", rng=rng)
    # Two sends in flight when Redis stops: their jobs end while Redis is away.
    slow = ["slow0@example.com", "slow1@example.com"]
    for address in slow:
        rig.sink.handler.reply_delay_for[address] = 3.0
    ids += [services.enqueue_task(owner=owners[0], mail=one(a), description="in flight").pk for a in slow]
    wait_until(lambda: len([e for e in rig.sink.handler.events if e[1] in slow]) >= 2, timeout=20)
    rig.redis.stop()
    stopped_at = time.time()
    time.sleep(15)
    rig.redis.restart()
    returned_at = time.time()
    rig.wait_ended(ids, timeout=count * 0.5 + 60)
    rows = Task.objects.filter(pk__in=ids).values_list("pk", "reserved_at")
    due = {pk: at.timestamp() if at else None for pk, at in rows}
    after_return = [max(at) - max(returned_at, due[pk] or 0) for pk, at in arrival_by_task(ids, rig.sink).items()]
    late = lateness([pk for pk in ids if due[pk]], rig.sink)
    fell_due_while_down = sum(1 for at in due.values() if at and stopped_at <= at <= returned_at)
    grace = 15.0 + max(0, fell_due_while_down - 300) / 20
    counts = report(
        "4 redis stopped 15s",
        classes := classify(ids, rig.sink.received),
        capsys,
        **lateness_figures(late),
        due_while_down=fell_due_while_down,
        max_after_return_s=round(max(after_return), 2),
        grace_s=grace,
        alive_workers=sum(1 for p in rig.workers.values() if p.poll() is None),
    )
    assert fell_due_while_down > 0
    assert counts["exactly_once"] == len(ids), (counts, classes)
    assert max(after_return) <= grace
    assert lateness_figures(late)["early"] == 0
    assert all(p.poll() is None for p in rig.workers.values()), "a worker quit on the outage"


def _form_door(client, owner, due):  # noqa: ANN001, ANN202
    client.force_login(owner)
    local = timezone.localtime(due)
    data = {
        "recipients": "door-form@example.com",
        "template": "welcome",
        "description": "form door",
        "context": "{}",
        "reserve": "on",
        "scheduled_at": local.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    response = client.post("/", data)
    return response.status_code, response.content.decode()


def _api_door(client, owner, due):  # noqa: ANN001, ANN202
    client.force_login(owner)
    body = {
        "template": "welcome",
        "recipients": ["door-api@example.com"],
        "description": "api door",
        "scheduled_at": due.isoformat(),
    }
    response = client.post("/api/tasks/", body, content_type="application/json")
    return response.status_code, response.content.decode()


def _admin_door(client, owner, due):  # noqa: ANN001, ANN202
    owner.is_staff = owner.is_superuser = True
    owner.save(update_fields=["is_staff", "is_superuser"])
    client.force_login(owner)
    local = timezone.localtime(due)
    data = {
        "owner": owner.pk,
        "recipients": "door-admin@example.com",
        "template": "welcome",
        "description": "admin door",
        "context": "{}",
        "reserve": "on",
        "scheduled_at": local.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    response = client.post("/admin/tasks/task/add/", data)
    return response.status_code, response.content.decode()


DOORS = {"form": _form_door, "api": _api_door, "admin": _admin_door}
MESSAGE = "The mail queue is not reachable right now; nothing was sent."


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("fault", ["stopped", "frozen"])
def test_reserve_while_redis_is_down_is_refused_quickly(rig, owners, client, capsys, door, fault, settings):
    """Case 5: Redis stopped or frozen (SIGSTOP) during a reservation, through each door: the request
    returns within the socket timeout with a clear error, and the reservation is refused: its row is
    kept as canceled + failed with the reason, and nothing is ever sent for it."""
    rig.start_redis("everysec")
    owner = owners[0]
    due = timezone.now() + timedelta(seconds=4)
    getattr(rig.redis, "stop" if fault == "stopped" else "pause")()
    started = time.monotonic()
    status, body = DOORS[door](client, owner, due)
    took = time.monotonic() - started
    if fault == "frozen":
        rig.redis.resume()
    else:
        rig.redis.restart()
    task = Task.objects.filter(owner=owner).order_by("-pk").first()
    assert task is not None
    rig.start_worker("a")
    wait_until(lambda: timezone.now() > due + timedelta(seconds=4), timeout=30)
    classes = classify([task.pk], rig.sink.received)
    report(f"5 reserve with redis {fault} via {door}", classes, capsys, took_s=round(took, 2), http=status)
    assert took <= 2 * settings.REDIS_SOCKET_TIMEOUT + 2
    if door == "api":
        assert status == 503 and '"code":"queue_unavailable"' in body.replace(" ", ""), body
    else:
        assert status == 200 and MESSAGE in body.replace("&#x27;", "'"), body[-2000:]
    task.refresh_from_db()
    assert (task.status, task.failed) == (Task.Status.CANCELED, True)
    assert "queue unavailable, not sent" in task.log
    assert classes[task.pk] == "refused"
    assert rig.sink.received == []


def test_rollback_after_reserve_leaves_no_job(rig, owners, capsys):
    """Case 10a: a reservation (and a send) whose transaction rolls back leaves nothing in Redis."""
    rig.start_redis("everysec")
    with pytest.raises(RuntimeError), transaction.atomic():
        services.reserve_task(
            owner=owners[0],
            scheduled_at=timezone.now() + timedelta(seconds=30),
            mail=one("rb@example.com"),
            description="rolled back",
        )
        services.enqueue_task(owner=owners[0], mail=one("rb2@example.com"), description="rolled back")
        raise RuntimeError("roll back")
    assert not Task.objects.exists()
    conn = rig.redis.client()
    assert conn.keys("rq:job:*") == []
    assert all(conn.zcard(f"rq:scheduled:{name}") == 0 for name in scheduler.QUEUE_NAMES)
    assert all(conn.llen(f"rq:queue:{name}") == 0 for name in scheduler.QUEUE_NAMES)
    report("10 rollback after reserve", {}, capsys, redis_keys=len(conn.keys("rq:*")))


CRASH = """
import os, sys
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from tasks import services
from tasks.mail import MailSpec
owner = get_user_model().objects.get(pk={owner})
mail = MailSpec(template="welcome", recipients=("{address}",), context={{}})
with transaction.atomic():
    transaction.on_commit(lambda: os._exit(9))  # runs first: the process dies after COMMIT, before the queue call
    if {reserve}:
        task = services.reserve_task(owner=owner, scheduled_at=timezone.now() + timedelta(seconds=6.5), mail=mail,
                                     description="crash")
    else:
        task = services.enqueue_task(owner=owner, mail=mail, description="crash")
    print(task.pk, flush=True)
"""


def test_crash_between_commit_and_queue_call_is_healed(rig, owners, capsys):
    """Case 10b: a process dies after its COMMIT and before its on-commit queue call: the row exists,
    Redis has no job; the reconciler schedules it and it is sent once, not early."""
    rig.start_redis("everysec")
    env = worker_env(
        redis_url=rig.redis.url, database_url=database_url(), smtp_port=None, extra={"RESERVATION_MIN_LEAD": "1"}
    )
    ids = []
    for reserve, address in ((True, "crash-r@example.com"), (False, "crash-q@example.com")):
        code = CRASH.format(owner=owners[0].pk, address=address, reserve=reserve)
        done = subprocess.run(  # noqa: S603
            [sys.executable, str(ROOT / "manage.py"), "shell", "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 9, done.stderr
        ids.append(int(done.stdout.split()[-1]))
    assert set(Task.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"reserved", "queued"}
    assert all(info.status is None for info in scheduler.inspect_jobs(ids).values())
    crashed_at = time.monotonic()
    rig.start_worker("a")
    rig.wait_ended(ids, timeout=60)
    healed_s = round(time.monotonic() - crashed_at, 1)
    classes = classify(ids, rig.sink.received)
    late = lateness(ids[:1], rig.sink)
    counts = report("10 crash between commit and enqueue", classes, capsys, healed_s=healed_s, **lateness_figures(late))
    assert counts["exactly_once"] == 2
    assert lateness_figures(late)["early"] == 0
    assert "reconcile: job was missing" in rig.logs()


def test_redis_killed_with_aof_always_keeps_every_job(rig, owners, capsys):
    """Case 3b: with AOF always, kill -9 Redis while reservations fall due, restart it 2 s later:
    every job is still in Redis and every mail goes once. A job a worker had just popped when Redis
    died is left in RQ's intermediate list, never started (RQ frees it only after a minute); the
    reconciler queues it again after HEARTBEAT_TIMEOUT. The line counts those repairs."""
    rng = random.Random(33)
    rig.start_redis("always")
    rig.start_worker("a")
    rig.start_worker("b")
    count = size(100, 1000)
    ids = reserve_many(owners, count, 3, 3 + 10 + count * 0.01, tag="always", rng=rng)
    time.sleep(3 + 5)
    rig.redis.kill()
    time.sleep(2)
    rig.redis.restart()
    rig.wait_ended(ids, timeout=60 + count * 0.05)
    classes = classify(ids, rig.sink.received)
    late = lateness(ids, rig.sink)
    repairs = rig.log_count("reconcile: job was missing")
    counts = report("3b redis kill -9 with AOF always", classes, capsys, **lateness_figures(late), repairs=repairs)
    assert counts["exactly_once"] == count, counts  # Redis died, not a worker: no reply is lost
    assert lateness_figures(late)["early"] == 0
