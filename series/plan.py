"""Keep a series' next occurrence: compute it from the rule and reserve it through tasks' service.

Called with the series row locked (select_for_update inside the caller's transaction), by the
doors' services (series.services), by the worker's claim (series.upkeep.advance_claimed) and by
the reconciler (series.upkeep.reconcile_series). At most one RESERVED task per series: the lock,
a check here, and a unique constraint on Task.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import User
from django.utils.translation import gettext as _

from series import rules
from series.exceptions import RuleError
from series.models import Series
from series.selectors import waiting_occurrence
from tasks.exceptions import QuotaExceededError, TaskStateError
from tasks.logfields import LOG_STAMP
from tasks.mail import MailSpec
from tasks.services.change import cancel_reserve
from tasks.services.create import reserve_task
from tasks.services.submit import ensure_send_quota
from tasks.validation import beyond_horizon

logger = logging.getLogger(__name__)

COUNT_LIMIT = 1000  # skipped occurrences counted one by one for the log; beyond, "1000 or more"
MARGIN = timedelta(seconds=1)  # an occurrence must be this much later than the reservation lead


def log_line(series: Series, line: str, *, now: datetime) -> None:
    """Append a time-stamped line to the (locked) series' log; saved by the caller."""
    series.log += f"{now.strftime(LOG_STAMP)} {line}\n"
    logger.info("series_id=%s %s", series.pk, line)


def in_zone(moment: datetime, zone: ZoneInfo) -> str:
    """``moment`` as the series' log writes a start: in the series' zone, to the second, with its offset."""
    return moment.astimezone(zone).isoformat(timespec="seconds")


def lock(series_id: int) -> Series:
    """The series row, locked until the end of the caller's transaction."""
    return Series.objects.select_for_update().get(pk=series_id)


def lock_if_free(series_id: int) -> Series | None:
    """The series row locked, or None if another transaction holds it (PostgreSQL; SQLite serializes writers).

    The worker's claim holds task rows when it gets here, and the doors lock the series before its
    task: the claim must not wait for the series, or the two could deadlock. Whoever holds the series
    decides its next occurrence; what the claim skips, the reconciler completes.
    """
    return Series.objects.select_for_update(skip_locked=True).filter(pk=series_id).first()


def parsed(series: Series) -> tuple[rules.Rule, ZoneInfo]:
    return rules.parse_rule(series.rule), rules.get_zone(series.zone)


def _earliest(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.RESERVATION_MIN_LEAD) + MARGIN


def ensure_begins_in_horizon(rule: rules.Rule, zone: ZoneInfo, *, start_at: datetime, now: datetime) -> None:
    """Raise RuleError (field ``start_at``) if the series would begin beyond the horizon.

    Only the start is checked: a rule that leaves a gap after a start within the horizon (yearly on
    the first Monday, created the day after it) gets only ``next_at``, and the reconciler reserves
    the occurrence once it is within the horizon, as it does for every later one. A start beyond the
    horizon would answer "created" for a series that reserves nothing for more than the horizon.
    The rule is expanded only to name the first occurrence in the refusal (it is never before the start).
    """
    if not beyond_horizon(start_at, now=now):
        return
    first = rules.next_after(rule, start=start_at, zone=zone, after=start_at - timedelta(microseconds=1))
    if first is not None:  # none at all: materialize says the rule has no occurrence
        raise RuleError(
            _("The first occurrence (%(when)s) must be within %(days)d days from now.")
            % {"when": f"{first:%Y-%m-%d %H:%M} {zone.key}", "days": settings.RESERVATION_MAX_HORIZON // 86400},
            field="start_at",
        )


def skipped_until(series: Series, *, now: datetime) -> tuple[int, datetime | None]:
    """How many occurrences fell between the last one behind the series (or its start) and what can be reserved now."""
    since = series.last_at or series.start_at - timedelta(microseconds=1)
    return _skipped(series, _earliest(now), since=since)


def _skipped(series: Series, until: datetime | None, *, since: datetime | None) -> tuple[int, datetime | None]:
    """How many occurrences lie strictly between ``since`` and ``until`` (all after it for None), and the first."""
    if since is None:
        return 0, None
    rule, zone = parsed(series)
    found, first, at = 0, None, since
    while found < COUNT_LIMIT:
        following = rules.next_after(rule, start=series.start_at, zone=zone, after=at)
        if following is None or (until is not None and following >= until):
            break
        first = first or following
        found, at = found + 1, following
    return found, first


def materialize(
    series: Series, *, now: datetime, strict: bool, reason: str = "late", note_skipped: bool = True
) -> None:
    """Reserve the series' next occurrence: the first after ``last_at`` that is at least the lead ahead.

    Occurrences in between (workers down, paused) are never sent; their number goes to the log.
    None left: the series ENDS. Beyond RESERVATION_MAX_HORIZON: only ``next_at`` is set, the
    reconciler reserves it later. ``strict`` (a door): quota and reservation errors are raised;
    otherwise (worker, reconciler) the occurrence is skipped with a log line. Saves the series.
    """
    if waiting_occurrence(series.pk) is not None:
        return
    rule, zone = parsed(series)
    after = _earliest(now) - timedelta(microseconds=1)
    if series.last_at is not None and series.last_at > after:
        after = series.last_at
    following = rules.next_after(rule, start=series.start_at, zone=zone, after=after)
    skipped, first = _skipped(series, following, since=series.last_at) if note_skipped else (0, None)
    if skipped:
        more = "+" if skipped >= COUNT_LIMIT else ""
        log_line(
            series,
            f"{reason}: {skipped}{more} occurrence(s) from {first.isoformat() if first else '-'} not sent "
            "(never a burst of missed ones)",
            now=now,
        )
    series.next_at, series.next_task_pk = following, None
    if following is None:
        series.status = Series.Status.ENDED
        log_line(series, "ended: the rule has no more occurrences", now=now)
    elif not beyond_horizon(following, now=now):
        _reserve(series, following, now=now, strict=strict)
    save(series)


def save(series: Series) -> None:
    series.save(update_fields=["status", "next_at", "last_at", "next_task_pk", "created_count", "log", "updated_at"])


def _reserve(series: Series, due: datetime, *, now: datetime, strict: bool) -> None:
    owner = cast(User, series.owner)
    mail = MailSpec(template=series.template, recipients=tuple(series.recipients), context=series.context)
    try:
        ensure_send_quota(owner=owner, now=now)
        task = reserve_task(
            owner=owner, scheduled_at=due, mail=mail, description=series.description, series_id=series.pk
        )
    except QuotaExceededError as exc:
        if strict:
            raise
        series.last_at, series.next_at = due, None  # passed over; the reconciler tries the one after it
        log_line(series, f"occurrence {due.isoformat()} not created: {exc}", now=now)
        return
    series.next_task_pk = task.pk
    series.created_count += 1
    log_line(series, f"occurrence {series.created_count} reserved: task #{task.pk} at {due.isoformat()}", now=now)


def pass_next(series: Series) -> None:
    """The next occurrence is behind the series now (claimed, skipped, missed or canceled on its own)."""
    if series.next_at is not None and (series.last_at is None or series.next_at > series.last_at):
        series.last_at = series.next_at
    series.next_at = series.next_task_pk = None


def cancel_waiting(series: Series, *, now: datetime, why: str) -> None:
    """Cancel the series' RESERVED occurrence, if any (tasks' cancel service), with a log line."""
    task = waiting_occurrence(series.pk)
    series.next_task_pk = None
    if task is None:
        return
    try:
        cancel_reserve(owner=None, task_id=task.pk)
    except TaskStateError:  # claimed meanwhile: it is being sent
        return
    log_line(series, f"{why}: occurrence task #{task.pk} at {task.reserved_at} canceled", now=now)
