"""A series end to end: real worker subprocesses (with the RQ scheduler), real Redis, real SMTP on loopback.

A minutely rule, with the reservation lead lowered to 1 s in this process and in the workers, so each
case takes one or two minutes of wall time.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from series import services
from series.models import Series
from tasks.mail import MailSpec
from tasks.models import Task
from tests.harness import stop_process, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ONE = MailSpec(template="welcome", recipients=("s@example.com",), context={"name": "Series"})
FAST = {"RESERVATION_MIN_LEAD": "1"}
ON_TIME = 3.0  # seconds an occurrence may arrive after its time (scheduler poll, release lead, claim)


def start_series(user, rule, *, ahead):
    start = (timezone.now() + timedelta(seconds=ahead)).replace(microsecond=0)
    series = services.create_series(
        owner=user, mail=ONE, description="every minute", rule=rule, zone="Asia/Seoul", start_at=start
    )
    return series, start


def arrivals(smtp):
    return [r.at for r in smtp.to("s@example.com")]


def test_three_occurrences_arrive_on_time_then_the_series_stops(
    transactional_db, user, fast_lead, worker_factory, smtp
):
    worker_factory(extra_env=FAST)
    series, start = start_series(user, "FREQ=MINUTELY;COUNT=3", ahead=4)
    dues = [start + timedelta(minutes=i) for i in range(3)]
    wait_until(lambda: len(arrivals(smtp)) >= 3, timeout=150, interval=0.2, what="three occurrences")
    got = arrivals(smtp)
    for at, due in zip(got, dues, strict=True):
        assert at >= due.timestamp(), f"an occurrence arrived {due.timestamp() - at:.2f}s early"
        assert at <= due.timestamp() + ON_TIME, f"an occurrence arrived {at - due.timestamp():.2f}s late"
    wait_until(lambda: Series.objects.get(pk=series.pk).status == "ended", timeout=10, what="series to end")
    occurrences = Task.objects.filter(series=series)
    wait_until(lambda: not occurrences.exclude(status="finished").exists(), timeout=10, what="the last to finish")
    series.refresh_from_db()
    assert occurrences.count() == 3 and set(occurrences.values_list("status", flat=True)) == {"finished"}
    assert sorted(occurrences.values_list("reserved_at", flat=True)) == dues
    assert (series.created_count, series.next_at, series.next_task_pk) == (3, None, None)
    assert "ended: the rule has no more occurrences" in series.log


def test_nothing_is_sent_while_paused(transactional_db, user, fast_lead, worker_factory, smtp):
    worker_factory(extra_env=FAST)
    series, start = start_series(user, "FREQ=MINUTELY", ahead=3)
    wait_until(lambda: len(arrivals(smtp)) == 1, timeout=20, interval=0.2, what="the first occurrence")
    paused = services.pause_series(owner=user, series_id=series.pk)
    assert paused.series.status == "paused"
    second = start + timedelta(minutes=1)
    wait_until(lambda: timezone.now() > second + timedelta(seconds=ON_TIME + 2), timeout=90, interval=0.5)
    assert len(arrivals(smtp)) == 1, "a mail was sent while the series was paused"
    resumed = services.resume_series(owner=user, series_id=series.pk)
    assert resumed.message == f"Series #{series.pk} resumed; 1 occurrence while paused was not sent."
    assert resumed.series.next_at == start + timedelta(minutes=2)
    assert Task.objects.filter(series=series, status="reserved").count() == 1
    services.end_series(owner=user, series_id=series.pk)
    assert Task.objects.filter(series=series, status="reserved").count() == 0
    assert len(arrivals(smtp)) == 1


def test_every_worker_down_across_two_occurrences_gives_exactly_one_catch_up(
    transactional_db, user, fast_lead, worker_factory, smtp
):
    first_worker = worker_factory(name="w1", extra_env=FAST)
    stop_process(first_worker)  # every worker is down for the first two occurrences
    assert first_worker.poll() is not None
    series, start = start_series(user, "FREQ=MINUTELY", ahead=3)
    wait_until(lambda: timezone.now() > start + timedelta(minutes=1, seconds=3), timeout=90, interval=0.5)
    assert arrivals(smtp) == []
    back = time.time()
    worker_factory(name="w2", extra_env=FAST)
    wait_until(lambda: len(arrivals(smtp)) == 1, timeout=30, interval=0.2, what="the catch-up")
    catch_up = arrivals(smtp)[0]
    assert catch_up >= back  # sent after the restart: the waiting occurrence, late, within the grace
    wait_until(lambda: Task.objects.filter(series=series, status="reserved").exists(), timeout=10)
    series.refresh_from_db()
    assert series.next_at == start + timedelta(minutes=2)  # +1 min fell due while down: skipped, not sent
    assert "late: 1 occurrence(s) from " in series.log and "not sent (never a burst of missed ones)" in series.log
    time.sleep(4)  # a burst would have arrived by now
    assert len(arrivals(smtp)) == 1
    assert Task.objects.filter(series=series).count() == 2
    services.end_series(owner=user, series_id=series.pk)


def test_redis_restarted_empty_the_reconciler_restores_the_occurrence(
    transactional_db, user, fast_lead, worker_factory, smtp, redis_server
):
    worker_factory(extra_env={**FAST, "RECONCILE_INTERVAL": "2"})
    series, start = start_series(user, "FREQ=MINUTELY;COUNT=1", ahead=8)
    [task_id] = Task.objects.filter(series=series).values_list("pk", flat=True)
    redis_server.kill()
    redis_server.restart()
    assert not redis_server.client().exists(f"rq:job:{task_id}")
    wait_until(lambda: redis_server.client().exists(f"rq:job:{task_id}"), timeout=20, what="the reconciler")
    wait_until(lambda: len(arrivals(smtp)) >= 1, timeout=30, interval=0.2, what="the occurrence")
    time.sleep(3)
    [at] = arrivals(smtp)
    assert start.timestamp() <= at <= start.timestamp() + 10
    wait_until(lambda: Series.objects.get(pk=series.pk).status == "ended", timeout=10, what="series to end")
    assert Task.objects.get(pk=task_id).status == "finished"
