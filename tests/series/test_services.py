"""Series services against the real test Redis: one reserved occurrence at a time, controls, claim, reconcile."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from series import services
from series.exceptions import RuleError, SeriesStateError
from series.models import Series
from series.upkeep import advance_claimed, reconcile_series
from tasks import scheduler
from tasks import services as task_services
from tasks.delivery.claim import claim_slice
from tasks.exceptions import QuotaExceededError
from tasks.mail import MailSpec
from tasks.models import Task

pytestmark = pytest.mark.django_db

ONE = MailSpec(template="welcome", recipients=("a@example.com",), context={"name": "S"})
SEOUL = ZoneInfo("Asia/Seoul")


def make(user, rule="FREQ=DAILY", start=None):
    start = start or (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    return services.create_series(
        owner=user, mail=ONE, description="daily", rule=rule, zone="Asia/Seoul", start_at=start
    )


def reserved(series):
    return list(Task.objects.filter(series=series, status="reserved").values_list("pk", "reserved_at"))


def test_create_series_reserves_its_first_occurrence_and_schedules_its_job(user, django_capture_on_commit_callbacks):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        series = make(user, "FREQ=DAILY;COUNT=3", start)
    series.refresh_from_db()
    [(task_id, due)] = reserved(series)
    assert due == start and series.next_at == start and series.next_task_pk == task_id
    assert (series.status, series.created_count, series.last_at) == ("active", 1, None)
    assert scheduler.due_time(task_id=task_id) == scheduler.release_time(start)
    task = Task.objects.get(pk=task_id)
    assert (task.owner, task.template, task.recipients, task.description) == (
        user,
        "welcome",
        ["a@example.com"],
        "daily",
    )
    assert "occurrence 1 reserved" in series.log


def test_the_log_gives_the_start_in_the_series_zone_like_its_occurrences(user):
    """A start typed in UTC (the API) or with microseconds (now) reads as the occurrences do: local, to the second."""
    start = (timezone.now() + timedelta(hours=1)).replace(minute=30, second=5, microsecond=123456)
    series = make(user, "FREQ=DAILY", start)
    local = start.astimezone(SEOUL).replace(microsecond=0)
    assert f"created: FREQ=DAILY in Asia/Seoul from {local.isoformat()}\n" in series.log
    later = start.astimezone(ZoneInfo("UTC")) + timedelta(days=1)
    services.change_series(owner=user, series_id=series.pk, zone="Europe/Paris", start_at=later)
    paris = later.astimezone(ZoneInfo("Europe/Paris")).replace(microsecond=0)
    assert f"changed: FREQ=DAILY in Europe/Paris from {paris.isoformat()}\n" in Series.objects.get(pk=series.pk).log


def test_create_series_refuses_a_bad_rule_and_writes_nothing(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuleError) as caught:
        make(user, "FREQ=DAILY;BYSETPOS=1")
    assert "BYSETPOS is not supported" in str(caught.value)
    assert not Series.objects.exists() and not Task.objects.exists() and callbacks == []


def test_create_series_whose_rule_has_ended_is_refused(user):
    past = timezone.now() - timedelta(days=10)
    with pytest.raises(RuleError, match="The rule has no occurrence after now."):
        make(user, "FREQ=DAILY;COUNT=2", past)
    assert not Series.objects.exists() and not Task.objects.exists()


def test_create_series_whose_first_occurrence_is_beyond_the_horizon_is_refused(
    user, settings, django_capture_on_commit_callbacks
):
    settings.RESERVATION_MAX_HORIZON = 30 * 86400
    start = timezone.now().astimezone(SEOUL).replace(second=0, microsecond=0) + timedelta(days=31)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuleError) as caught:
        make(user, "FREQ=DAILY", start)
    assert caught.value.field == "start_at"
    assert str(caught.value) == (
        f"The first occurrence ({start:%Y-%m-%d %H:%M} Asia/Seoul) must be within 30 days from now."
    )
    assert not Series.objects.exists() and not Task.objects.exists() and callbacks == []


def test_a_rule_whose_first_occurrence_lies_beyond_the_horizon_waits_for_it(user, settings):
    """The start is within the horizon and the rule leaves a gap (yearly on the first Monday, created
    the day after): the series is created with only next_at set; the reconciler reserves it later."""
    settings.RESERVATION_MAX_HORIZON = 20 * 86400
    now = timezone.now().astimezone(SEOUL)
    start = now + timedelta(days=1)  # within the horizon, but today's day of the month is next month's
    series = make(user, f"FREQ=MONTHLY;BYMONTHDAY={now.day}", start)
    series.refresh_from_db()
    assert series.status == "active" and reserved(series) == []
    assert series.next_at is not None and series.next_at.astimezone(SEOUL).day == now.day
    assert series.next_at > timezone.now() + timedelta(days=20)
    settings.RESERVATION_MAX_HORIZON = 40 * 86400  # as if time had moved on: it is within the horizon now
    assert reconcile_series() == [series.pk]
    [(_pk, due)] = reserved(series)
    assert due == series.next_at


@pytest.mark.parametrize("paused", [False, True])
def test_change_series_start_beyond_the_horizon_is_refused_and_changes_nothing(
    user, paused, django_capture_on_commit_callbacks
):
    series = make(user)
    if paused:
        services.pause_series(owner=user, series_id=series.pk)
    before = Series.objects.filter(pk=series.pk).values().get()
    tasks_before = list(Task.objects.filter(series=series).values_list("pk", "status", "reserved_at"))
    far = timezone.now() + timedelta(days=366)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuleError) as caught:
        services.change_series(owner=user, series_id=series.pk, start_at=far, description="later")
    assert caught.value.field == "start_at"
    assert str(caught.value).endswith("must be within 365 days from now.")
    assert Series.objects.filter(pk=series.pk).values().get() == before
    assert list(Task.objects.filter(series=series).values_list("pk", "status", "reserved_at")) == tasks_before
    assert callbacks == []


def test_a_series_that_has_begun_keeps_a_next_occurrence_beyond_the_horizon(user):
    """Only the first occurrence must be within the horizon; a later one waits for the reconciler."""
    start = timezone.now().astimezone(SEOUL).replace(microsecond=0) - timedelta(days=30)
    series = make(user, "FREQ=YEARLY;INTERVAL=2", start)
    changed = services.change_series(owner=user, series_id=series.pk, description="every other year")
    changed.refresh_from_db()
    assert changed.next_at is not None and changed.next_at > timezone.now() + timedelta(days=365)
    assert (changed.status, changed.description, reserved(changed)) == ("active", "every other year", [])


def test_start_in_the_past_begins_with_the_next_future_occurrence(user):
    start = timezone.now().astimezone(SEOUL).replace(microsecond=0) - timedelta(days=3)
    series = make(user, "FREQ=DAILY", start)
    [(_pk, due)] = reserved(series)
    assert due > timezone.now() and due - timezone.now() <= timedelta(days=1)
    assert due.astimezone(SEOUL).time() == start.astimezone(SEOUL).time()


def test_at_most_one_reserved_occurrence_per_series_is_a_constraint(user):
    series = make(user)
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.create(
            owner=user, status="reserved", reserved_at=timezone.now() + timedelta(days=2), series=series, template="x"
        )


def test_claiming_an_occurrence_reserves_the_following_one(user):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    series = make(user, "FREQ=DAILY;COUNT=2", start)
    [(first, _due)] = reserved(series)
    chunk = claim_slice(own_task_id=first, now=start, limit=10)
    assert chunk.claimed == [first]
    series.refresh_from_db()
    [(second, due)] = reserved(series)
    assert second != first and due == start + timedelta(days=1)
    assert (series.last_at, series.next_at, series.next_task_pk, series.created_count) == (start, due, second, 2)
    # The last one claimed: the rule has no more, the series ends.
    claim_slice(own_task_id=second, now=due, limit=10)
    series.refresh_from_db()
    assert (series.status, series.next_at, reserved(series)) == ("ended", None, [])
    assert "ended: the rule has no more occurrences" in series.log


def test_pause_cancels_the_occurrence_and_resume_does_not_send_skipped_ones(user, django_capture_on_commit_callbacks):
    start = timezone.now().replace(microsecond=0) - timedelta(minutes=10, seconds=30)
    series = make(user, "FREQ=MINUTELY", start)
    [(first, _due)] = reserved(series)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.pause_series(owner=user, series_id=series.pk)
    assert outcome.series.status == "paused" and reserved(series) == []
    assert Task.objects.get(pk=first).status == "canceled"
    assert not scheduler.job_state(task_id=first) or scheduler.job_state(task_id=first) in ("canceled", "missing")
    with pytest.raises(SeriesStateError):
        services.pause_series(owner=user, series_id=series.pk)
    # Pretend the pause lasted: the series was last sent 5 minutes ago.
    Series.objects.filter(pk=series.pk).update(last_at=start + timedelta(minutes=5))
    outcome = services.resume_series(owner=user, series_id=series.pk)
    [(_second, due)] = reserved(series)
    assert due > timezone.now() + timedelta(seconds=60)
    assert outcome.message.startswith(f"Series #{series.pk} resumed; ")
    assert "occurrences while paused were not sent." in outcome.message
    assert "due while paused not sent" in Series.objects.get(pk=series.pk).log


def test_skip_cancels_the_next_and_reserves_the_one_after(user):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    series = make(user, "FREQ=DAILY", start)
    [(first, _due)] = reserved(series)
    services.skip_series(owner=user, series_id=series.pk)
    [(second, due)] = reserved(series)
    assert Task.objects.get(pk=first).status == "canceled" and due == start + timedelta(days=1)
    series.refresh_from_db()
    assert (series.last_at, series.next_at) == (start, due)


def test_change_rule_recomputes_the_next_and_a_failure_rolls_back(user):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    series = make(user, "FREQ=DAILY", start)
    [(first, _due)] = reserved(series)
    services.change_series(owner=user, series_id=series.pk, rule="FREQ=WEEKLY;INTERVAL=2")
    [(second, due)] = reserved(series)
    assert Task.objects.get(pk=first).status == "canceled" and due == start
    with pytest.raises(RuleError):
        services.change_series(owner=user, series_id=series.pk, rule="FREQ=HOURLY;BYSECOND=1")
    assert reserved(series) == [(second, due)]
    assert Series.objects.get(pk=series.pk).rule == "FREQ=WEEKLY;INTERVAL=2"


def test_end_cancels_the_occurrence(user):
    series = make(user)
    [(first, _due)] = reserved(series)
    outcome = services.end_series(owner=user, series_id=series.pk)
    assert outcome.series.status == "ended" and Task.objects.get(pk=first).status == "canceled"
    with pytest.raises(SeriesStateError):
        services.resume_series(owner=user, series_id=series.pk)


def test_other_users_series_is_not_found(user, other_user):
    series = make(user)
    with pytest.raises(Exception, match=f"Series #{series.pk} was not found."):
        services.pause_series(owner=other_user, series_id=series.pk)


def test_reconcile_creates_a_missing_next_occurrence_and_cancels_a_stale_one(user):
    series = make(user)
    [(first, due)] = reserved(series)
    task_services.cancel_reserve(owner=user, task_id=first)  # one occurrence canceled on its own
    assert reconcile_series() == [series.pk]
    [(second, due2)] = reserved(series)
    assert due2 == due + timedelta(days=1)
    assert reconcile_series() == []  # nothing left to do
    Series.objects.filter(pk=series.pk).update(status="paused")  # paused, but something left it reserved
    assert reconcile_series() == [series.pk]
    assert reserved(series) == [] and Task.objects.get(pk=second).status == "canceled"


def test_missed_occurrences_give_no_burst(user, settings):
    """Workers down for 3 occurrences: the reconciler marks the waiting one missed, reserves the next future one."""
    settings.MISSED_GRACE_MINUTES = 1
    start = timezone.now().replace(microsecond=0) + timedelta(minutes=2)
    series = make(user, "FREQ=MINUTELY", start)
    later = start + timedelta(minutes=3, seconds=10)
    task_services.reconcile_tasks(now=later)  # marks the occurrence missed
    assert reconcile_series(now=later) == [series.pk]
    series.refresh_from_db()
    [(_pk, due)] = reserved(series)
    assert due == start + timedelta(minutes=5)  # +4 is closer to `later` than the 60-second lead
    # The waiting one was marked missed; +1..+4 were never sent either, and nothing is sent in a burst.
    assert f"occurrence task #{_pk - 1} is canceled; the next one follows" in series.log
    assert f"missed: 4 occurrence(s) from {(start + timedelta(minutes=1)).astimezone(SEOUL).isoformat()}" in series.log
    assert Task.objects.filter(series=series).count() == 2


def test_quota_counts_each_occurrence(user, settings):
    settings.API_DAILY_SEND_QUOTA = 2
    make(user)
    make(user)
    with pytest.raises(QuotaExceededError):
        make(user)
    assert Series.objects.count() == 2 and Task.objects.count() == 2


def test_preview_lists_the_next_five(user):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    got = services.preview_rule(rule="freq=daily;count=3", zone="Asia/Seoul", start_at=start)
    assert got.rule == "FREQ=DAILY;COUNT=3" and len(got.upcoming) == 3 and got.upcoming[0] == start


def test_claim_past_the_quota_passes_over_the_occurrence_and_the_reconciler_takes_the_next(user, settings):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    series = make(user, "FREQ=DAILY", start)
    [(first, _due)] = reserved(series)
    settings.API_DAILY_SEND_QUOTA = 1  # the first occurrence used it
    claim_slice(own_task_id=first, now=start, limit=10)
    series.refresh_from_db()
    assert reserved(series) == [] and Task.objects.get(pk=first).status == "running"
    day2 = (start + timedelta(days=1)).astimezone(SEOUL).isoformat()
    assert f"occurrence {day2} not created: Daily send limit reached" in series.log
    assert (series.last_at, series.next_at, series.next_task_pk) == (start + timedelta(days=1), None, None)
    settings.API_DAILY_SEND_QUOTA = 0
    assert reconcile_series(now=start) == [series.pk]
    [(_third, due)] = reserved(series)
    assert due == start + timedelta(days=2)  # day 2 stays passed over: never sent late in a burst


def test_a_retry_claim_of_the_same_occurrence_creates_nothing_more(user):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    series = make(user, "FREQ=DAILY", start)
    [(first, _due)] = reserved(series)
    claim_slice(own_task_id=first, now=start, limit=10)
    [(second, _due2)] = reserved(series)
    advance_claimed(occurrences=[(first, series.pk, start)], now=start)  # as a retry's claim would
    assert reserved(series) == [(second, start + timedelta(days=1))]
    assert Task.objects.filter(series=series).count() == 2


def test_an_occurrence_moved_earlier_stands_in_for_its_slot(user):
    """next_at stays the rule's slot when the occurrence is moved on its own (series.selectors.with_next_send)."""
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    series = make(user, "FREQ=DAILY", start)
    [(first, _due)] = reserved(series)
    moved = start - timedelta(minutes=30)
    task_services.reschedule_task(owner=user, task_id=first, scheduled_at=moved)
    assert Series.objects.get(pk=series.pk).next_at == start
    claim_slice(own_task_id=first, now=moved, limit=10)
    [(_second, due)] = reserved(series)
    assert due == start + timedelta(days=1)  # not the slot at ``start`` again
