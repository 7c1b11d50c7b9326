"""Fault cases 10-13: who owns a send at the moment it goes out (issue: one delivery pipeline).

10: cancels racing the due time; 11: a frozen worker during a burst holds almost nothing;
12: a frozen worker taken over sends nothing more (burst, and a 2,000-recipient task);
13: concurrent cancels, exactly one wins.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tasks import services
from tasks.exceptions import TaskStateError
from tasks.mail import MailSpec
from tasks.models import Delivery, Task
from tests.faults.conftest import TIMEOUT, arrival_by_task, claimed_early, lateness, one, size
from tests.faults.oracle import classify, lateness_figures, report
from tests.harness import at_once, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(TIMEOUT)]


def _freeze_outside_a_write(rig, name: str, *, attempts: int = 200) -> None:
    """SIGSTOP worker ``name`` at a moment it holds no SQLite write lock.

    SQLite has one writer: a process frozen inside a write transaction blocks every other writer
    for the whole freeze (README, Guarantees). PostgreSQL has no such lock, so there the first
    freeze is kept. Bounded: at most ``attempts`` tries, a few milliseconds apart.
    """
    for _ in range(attempts):
        rig.pause(name)
        if connection.vendor != "sqlite":
            return
        probe = sqlite3.connect(connection.settings_dict["NAME"], timeout=0.05)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            rig.resume(name)
            time.sleep(0.003)
        finally:
            probe.close()
    raise AssertionError("could not freeze the worker outside a write transaction")


def test_cancel_racing_the_due_time_never_reports_success_for_a_mail_that_goes_out(rig, owners, capsys):
    """Case 10: cancel_task at due +- 0.3 s, two workers: a successful cancel means no SMTP transaction
    for that mail began after it returned (and, one recipient each, none at all)."""
    rng = random.Random(10)
    rig.start_redis("everysec")
    for name in ("a", "b"):
        rig.start_worker(name)
    trials = size(300, 1000)
    first = timezone.now() + timedelta(seconds=4 + trials * 0.01)
    plan = []
    for i in range(trials):
        due = first + timedelta(seconds=i * 0.06 + rng.uniform(0, 0.03))
        task = services.reserve_task(
            owner=owners[i % len(owners)], scheduled_at=due, mail=one(f"own{i}@example.com"), description=f"own{i}"
        )
        plan.append((due + timedelta(seconds=rng.uniform(-0.3, 0.3)), task.pk, task.owner, f"own{i}@example.com"))
    answers: dict[int, tuple[str, float, str]] = {}
    for cancel_at, task_id, owner, address in sorted(plan, key=lambda p: p[0]):
        wait = (cancel_at - timezone.now()).total_seconds()
        if wait > 0:
            time.sleep(wait)
        try:
            services.cancel_task(owner=owner, task_id=task_id)
            answers[task_id] = ("success", time.time(), address)
        except TaskStateError:
            answers[task_id] = ("conflict", time.time(), address)
    ids = list(answers)
    rig.wait_ended(ids, timeout=60)
    time.sleep(1.0)  # a mail wrongly let through would reach the sink within this
    classes = classify(ids, rig.sink.received)
    started = rig.sink.handler.mail_started
    after_success = [
        pk
        for pk, (answer, at, address) in answers.items()
        if answer == "success" and any(t >= at for t in started.get(address, []))
    ]
    sent_after_success = [
        pk for pk, (answer, _, address) in answers.items() if answer == "success" and started.get(address)
    ]
    mismatched = [
        pk
        for pk in ids
        if (classes[pk], answers[pk][0]) not in {("canceled_ok", "success"), ("exactly_once", "conflict")}
    ]
    counts = report(
        "10 cancel at due +-0.3s",
        classes,
        capsys,
        success=sum(1 for a in answers.values() if a[0] == "success"),
        conflict=sum(1 for a in answers.values() if a[0] == "conflict"),
        smtp_began_after_success=len(after_success),
        any_smtp_after_success=len(sent_after_success),
        mismatched=len(mismatched),
    )
    assert after_success == [] and sent_after_success == []
    assert not mismatched, [(pk, classes[pk], answers[pk][0]) for pk in mismatched[:10]]
    assert counts["canceled_but_sent"] == 0 and counts["duplicate"] == 0 and counts["stopped"] == 0
    assert 0 < counts["canceled_ok"] < trials, "the cancels never raced the workers; the case proved nothing"


def _burst(owners, count: int, *, tag: str, lead: float = 4.0) -> tuple[list[int], float]:
    due = timezone.now() + timedelta(seconds=lead)
    ids = [
        services.reserve_task(
            owner=owners[i % len(owners)], scheduled_at=due, mail=one(f"{tag}{i}@example.com"), description=f"{tag}{i}"
        ).pk
        for i in range(count)
    ]
    return ids, due.timestamp()


def test_a_frozen_worker_holds_almost_nothing_of_a_burst(rig, owners, capsys):
    """Case 11: one of two workers frozen 30 s during a burst of 200 due at once, default HEARTBEAT_TIMEOUT:
    the other sends at least 90% within 5 s of the due time; nothing twice."""
    rig.start_redis("everysec")
    rig.start_worker("a", HEARTBEAT_TIMEOUT="120")
    rig.start_worker("b", HEARTBEAT_TIMEOUT="120")
    frozen = next(name for name in rig.workers if name.startswith("a-"))
    count = 200
    ids, due = _burst(owners, count, tag="frz")
    wait_until(lambda: len(rig.sink.received) >= 5, timeout=30, what="the burst to start")
    _freeze_outside_a_write(rig, frozen)
    frozen_at = time.time()
    time.sleep(max(0.0, 30 - (time.time() - frozen_at)))
    within = sum(1 for arrivals in arrival_by_task(ids, rig.sink).values() if min(arrivals) <= due + 5.0)
    rig.resume(frozen)
    rig.wait_ended(ids, timeout=180)
    classes = classify(ids, rig.sink.received)
    late = lateness(ids, rig.sink)
    counts = report(
        "11 frozen worker in a burst", classes, capsys, **lateness_figures(late), within_5s=within, frozen_s=30
    )
    assert counts["duplicate"] == 0
    assert counts["exactly_once"] == count, counts
    assert within >= 0.9 * count, f"only {within} of {count} within 5 s of their due time"
    assert lateness_figures(late)["early"] == 0 and claimed_early(ids) == 0


@pytest.mark.parametrize("shape", ["burst", "big task"])
def test_a_frozen_worker_taken_over_sends_nothing_more(rig, owners, capsys, shape):
    """Case 12: HEARTBEAT_TIMEOUT lowered, a worker frozen 30 s mid-send and taken over by the other:
    at most the one message that was on the wire goes out twice, with the same Message-ID."""
    rig.start_redis("everysec")
    rig.start_worker("a")
    rig.start_worker("b")
    frozen = next(name for name in rig.workers if name.startswith("a-"))
    if shape == "burst":
        ids, _ = _burst(owners, 200, tag="tko")
        recipients = 200
    else:
        recipients = size(2000, 10000)
        mail = MailSpec(
            template="welcome", recipients=tuple(f"big{i}@example.com" for i in range(recipients)), context={}
        )
        ids = [services.enqueue_task(owner=owners[0], mail=mail, description="big").pk]
    wait_until(lambda: len(rig.sink.received) >= min(100, recipients // 10), timeout=60, what="sending to start")
    _freeze_outside_a_write(rig, frozen)
    time.sleep(30)
    rig.resume(frozen)
    rig.wait_ended(ids, timeout=240)
    time.sleep(1.0)
    classes = classify(ids, rig.sink.received)
    copies = Counter(r.message_id for r in rig.sink.received)
    extra = sum(n - 1 for n in copies.values() if n > 1)
    sent = Delivery.objects.filter(task_id__in=ids, status="sent").count()
    report(f"12 frozen worker taken over ({shape})", classes, capsys, extra_copies=extra, recipients=recipients)
    assert extra <= 1, f"{extra} extra copies"
    assert sent == recipients and len(copies) == recipients
    assert all(Task.objects.get(pk=pk).status == "finished" for pk in ids)


def test_concurrent_cancels_exactly_one_wins(rig, owners, capsys, transactional_db):
    """Case 13: 20 concurrent POST /cancel/ of one reservation, and of one running send: one 200 each."""
    rig.start_redis("everysec")
    rig.start_worker("a")
    owner = owners[0]
    token = Token.objects.create(user=owner).key
    reserved = services.reserve_task(
        owner=owner, scheduled_at=timezone.now() + timedelta(minutes=5), mail=one("c@example.com"), description="c"
    )
    rig.sink.handler.delay = 0.05
    long = services.enqueue_task(
        owner=owner,
        mail=MailSpec(template="welcome", recipients=tuple(f"l{i}@example.com" for i in range(200)), context={}),
        description="long",
    )
    wait_until(lambda: len(rig.sink.received) >= 3, timeout=30, what="the long send to start")
    results: dict[int, Counter] = {}
    for task_id in (reserved.pk, long.pk):
        codes: list[int] = []

        def cancel(task_id: int = task_id, codes: list[int] = codes) -> None:
            codes.append(Client(HTTP_AUTHORIZATION=f"Token {token}").post(f"/api/tasks/{task_id}/cancel/").status_code)

        assert at_once(20, cancel, after=lambda: connection.close()) == []
        results[task_id] = Counter(codes)
    rig.sink.handler.delay = 0.0
    classes = classify([reserved.pk, long.pk], rig.sink.received)
    report(
        "13 concurrent cancels",
        classes,
        capsys,
        reserved_codes=str(dict(results[reserved.pk])),
        running_codes=str(dict(results[long.pk])),
    )
    assert results[reserved.pk] == Counter({200: 1, 409: 19})
    assert results[long.pk] == Counter({200: 1, 409: 19})
    assert classes == {reserved.pk: "canceled_ok", long.pk: "stopped"}
