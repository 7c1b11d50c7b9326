"""What the doors (mail form, series page, admin, API) call to create and control a series.

Each service locks the series row, changes it and its next occurrence in one transaction, and
leaves a line in the series' log. The next occurrence is an ordinary RESERVED task, reserved and
canceled through tasks' services, so it gets every check a reservation gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from series import plan, rules
from series.exceptions import RuleError, SeriesStateError
from series.models import Series
from series.selectors import get_series_of
from tasks.mail import MailSpec
from tasks.validation import clean_mail, ensure_description, ensure_utc_offset

Owner = AbstractBaseUser | None
S = Series.Status


@dataclass(frozen=True)
class Preview:
    """What a rule means before it is saved: its canonical text, a plain-language summary, the next dates."""

    rule: str
    summary: str
    upcoming: list[datetime]


def preview_rule(*, rule: str, zone: str, start_at: datetime, count: int = 5) -> Preview:
    """Parse ``rule`` and list its next ``count`` occurrences from now; RuleError if it cannot be used."""
    parsed, tz = _check_rule(rule, zone, start_at)
    after = max(timezone.now(), start_at - timedelta(microseconds=1))
    first = rules.upcoming(parsed, start=start_at, zone=tz, after=after, limit=count)
    return Preview(rule=parsed.text, summary=rules.summarize(parsed, start=start_at, zone_name=zone), upcoming=first)


def _check_rule(rule: str, zone: str, start_at: datetime) -> tuple[rules.Rule, ZoneInfo]:
    if not isinstance(start_at, datetime) or timezone.is_naive(start_at):
        raise RuleError(_("The start must include a time zone."), field="start_at")
    ensure_utc_offset(start_at)
    return rules.parse_rule(rule), rules.get_zone(zone)


def _lock_owner(owner: AbstractBaseUser) -> None:
    """Serialize the owner's quota count (as tasks.services.submit_send does)."""
    get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True).first()


def create_series(
    *, owner: AbstractBaseUser, mail: MailSpec, description: str, rule: str, zone: str, start_at: datetime
) -> Series:
    """Create an ACTIVE series and reserve its first occurrence in the same transaction.

    The first occurrence is the rule's first at or after ``start_at`` that is at least
    RESERVATION_MIN_LEAD ahead. Raises RuleError (rule, zone, start, a first occurrence beyond
    RESERVATION_MAX_HORIZON, or no occurrence left), ReservationError (mail, description) and
    QuotaExceededError (each occurrence counts).
    """
    now = timezone.now()
    parsed, tz = _check_rule(rule, zone, start_at)
    plan.ensure_begins_in_horizon(parsed, tz, start_at=start_at, now=now)
    mail = clean_mail(mail)
    description = ensure_description(description)
    with transaction.atomic():
        _lock_owner(owner)
        series = Series.objects.create(
            owner=cast(User, owner),
            description=description,
            template=mail.template,
            recipients=list(mail.recipients),
            context=mail.context,
            rule=parsed.text,
            zone=zone,
            start_at=start_at,
        )
        plan.log_line(series, f"created: {parsed.text} in {zone} from {plan.in_zone(start_at, tz)}", now=now)
        plan.materialize(series, now=now, strict=True)
        if series.status == S.ENDED:
            raise RuleError(_("The rule has no occurrence after now."), field="rule")
    return series


@dataclass(frozen=True)
class Outcome:
    """A control's result: the series after it, and a sentence for the person who asked."""

    series: Series
    message: str


def _locked(owner: Owner, series_id: int, allowed: tuple[str, ...], action: str) -> Series:
    get_series_of(owner, series_id)
    series = plan.lock(series_id)
    if series.status not in allowed:
        raise SeriesStateError(
            _("Series #%(id)s is %(status)s and cannot be %(action)s.")
            % {"id": series.pk, "status": series.status_in_sentence(), "action": action},
            code=f"series_{series.status}",
        )
    return series


@transaction.atomic
def pause_series(*, owner: Owner, series_id: int) -> Outcome:
    """ACTIVE -> PAUSED: its reserved occurrence is canceled; nothing is sent until it is resumed."""
    now = timezone.now()
    series = _locked(owner, series_id, (S.ACTIVE,), _("paused"))
    plan.cancel_waiting(series, now=now, why="paused")
    series.status, series.next_at = S.PAUSED, None
    plan.log_line(series, "paused", now=now)
    plan.save(series)
    return Outcome(series, _("Series #%(id)s paused; nothing is sent until you resume it.") % {"id": series.pk})


@transaction.atomic
def resume_series(*, owner: Owner, series_id: int) -> Outcome:
    """PAUSED -> ACTIVE with the next FUTURE occurrence reserved; the ones skipped while paused are not sent."""
    now = timezone.now()
    series = _locked(owner, series_id, (S.PAUSED,), _("resumed"))
    series.status = S.ACTIVE
    skipped, _first = plan.skipped_until(series, now=now)
    plan.log_line(series, "resumed", now=now)
    plan.log_line(series, f"{skipped} occurrence(s) due while paused not sent", now=now)
    plan.materialize(series, now=now, strict=True, note_skipped=False)
    message = ngettext(
        "Series #%(id)s resumed; %(n)d occurrence while paused was not sent.",
        "Series #%(id)s resumed; %(n)d occurrences while paused were not sent.",
        skipped,
    ) % {"id": series.pk, "n": skipped}
    return Outcome(series, message)


@transaction.atomic
def skip_series(*, owner: Owner, series_id: int) -> Outcome:
    """Skip the next occurrence (canceled if reserved) and reserve the one after it."""
    now = timezone.now()
    series = _locked(owner, series_id, (S.ACTIVE,), _("skipped"))
    if series.next_at is None:
        raise SeriesStateError(_("Series #%(id)s has no next occurrence.") % {"id": series.pk})
    skipped = series.next_at
    plan.cancel_waiting(series, now=now, why="skipped")
    plan.pass_next(series)
    plan.log_line(series, f"skipped the occurrence at {skipped.isoformat()}", now=now)
    plan.materialize(series, now=now, strict=True)
    return Outcome(series, _("Series #%(id)s: the next occurrence was skipped.") % {"id": series.pk})


@transaction.atomic
def change_series(
    *,
    owner: Owner,
    series_id: int,
    rule: str | None = None,
    zone: str | None = None,
    start_at: datetime | None = None,
    description: str | None = None,
) -> Series:
    """Change the rule, zone, start or description; the next occurrence is computed again and reserved
    with the same checks as a reservation (RuleError, ReservationError, QuotaExceededError roll it all back).

    A first occurrence beyond RESERVATION_MAX_HORIZON is refused (RuleError on start_at) before anything
    changes, paused or not: the series could never reserve it.
    """
    now = timezone.now()
    series = _locked(owner, series_id, (S.ACTIVE, S.PAUSED), _("changed"))
    parsed, tz = _check_rule(rule or series.rule, zone or series.zone, start_at or series.start_at)
    plan.ensure_begins_in_horizon(parsed, tz, start_at=start_at or series.start_at, now=now)
    series.rule, series.zone, series.start_at = parsed.text, zone or series.zone, start_at or series.start_at
    if description is not None:
        series.description = ensure_description(description)
    plan.cancel_waiting(series, now=now, why="changed")
    series.next_at = None
    plan.log_line(series, f"changed: {series.rule} in {series.zone} from {plan.in_zone(series.start_at, tz)}", now=now)
    series.save(update_fields=["rule", "zone", "start_at", "description"])
    if series.status == S.ACTIVE:
        _lock_owner(series.owner)
        plan.materialize(series, now=now, strict=True)
    else:
        plan.save(series)
    return series


@transaction.atomic
def end_series(*, owner: Owner, series_id: int) -> Outcome:
    """ACTIVE or PAUSED -> ENDED: the reserved occurrence is canceled; no more are created."""
    now = timezone.now()
    series = _locked(owner, series_id, (S.ACTIVE, S.PAUSED), _("ended"))
    plan.cancel_waiting(series, now=now, why="ended")
    series.status, series.next_at = S.ENDED, None
    plan.log_line(series, "ended by the owner", now=now)
    plan.save(series)
    return Outcome(series, _("Series #%(id)s ended; no more mail will be sent.") % {"id": series.pk})
