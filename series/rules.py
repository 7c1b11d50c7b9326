"""Recurrence rules: a subset of RFC 5545 RRULE, read as wall-clock time in the series' zone.

Pure functions, no ORM. The rule is expanded by python-dateutil's rrule on NAIVE local times (so
09:00 stays 09:00 local across daylight-saving changes); each instance is then made aware in the
zone by ``resolve``: a time that does not exist (spring-forward gap) moves forward by the length
of the gap (RFC 5545 §3.3.5: 02:30 on New York's spring-forward day is 03:30 EDT), and an
ambiguous time (fall-back) takes its first occurrence.

Supported: FREQ (MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY), INTERVAL, BYDAY (with
ordinals such as 1MO or -1FR in MONTHLY/YEARLY rules), BYMONTHDAY (1..31, -1..-31), BYHOUR,
BYMINUTE, COUNT, UNTIL. Anything else is refused with a message naming it.
"""

from __future__ import annotations

import itertools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from dateutil import rrule as du
from django.utils.dates import WEEKDAYS
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from reservemail import zones
from series.exceptions import RuleError

FREQUENCIES = {
    "MINUTELY": du.MINUTELY,
    "HOURLY": du.HOURLY,
    "DAILY": du.DAILY,
    "WEEKLY": du.WEEKLY,
    "MONTHLY": du.MONTHLY,
    "YEARLY": du.YEARLY,
}
DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
SUPPORTED = ("FREQ", "INTERVAL", "BYDAY", "BYMONTHDAY", "BYHOUR", "BYMINUTE", "COUNT", "UNTIL")
MAX_COUNT = 10_000
MAX_INTERVAL = 1_000
MAX_RULE_LENGTH = 500
SCAN_LIMIT = 20_000  # instances looked at for one answer; a rule that matches nothing stops here
_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z?))?$")


@dataclass(frozen=True)
class Rule:
    """A parsed rule; ``text`` is its canonical RRULE form (upper case, keys in a fixed order)."""

    text: str
    freq: str
    interval: int = 1
    byday: tuple[tuple[int, int | None], ...] = ()  # (weekday 0=Monday, ordinal or None)
    bymonthday: tuple[int, ...] = ()
    byhour: tuple[int, ...] = ()
    byminute: tuple[int, ...] = ()
    count: int | None = None
    until: str | None = None  # as written: YYYYMMDD, YYYYMMDDTHHMMSS (local) or ...Z (UTC)


def _ints(key: str, value: str, low: int, high: int, *, zero: bool = True) -> tuple[int, ...]:
    out = []
    for part in value.split(","):
        try:
            number = int(part)
        except ValueError:
            raise RuleError(_("%(key)s must be a list of numbers.") % {"key": key}, field="rule") from None
        if not (low <= number <= high) or (number == 0 and not zero):
            raise RuleError(_("%(key)s value %(value)s is out of range.") % {"key": key, "value": number}, field="rule")
        out.append(number)
    return tuple(sorted(set(out)))


def _byday(value: str, freq: str) -> tuple[tuple[int, int | None], ...]:
    days = []
    for part in value.split(","):
        match = _BYDAY.match(part)
        if match is None:
            raise RuleError(
                _("BYDAY value “%(value)s” is not a weekday such as MO, 1MO or -1FR.") % {"value": part}, field="rule"
            )
        ordinal = int(match.group(1)) if match.group(1) else None
        if ordinal is not None and (ordinal == 0 or abs(ordinal) > 5 or freq not in ("MONTHLY", "YEARLY")):
            raise RuleError(
                _("A numbered weekday (such as 1MO) needs FREQ=MONTHLY or YEARLY and a number 1..5 or -1..-5."),
                field="rule",
            )
        days.append((DAY_CODES.index(match.group(2)), ordinal))
    return tuple(sorted(set(days), key=lambda day: (day[0], day[1] or 0)))


def parse_rule(text: str) -> Rule:
    """Parse ``text`` ("FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9", an optional "RRULE:" prefix) or raise RuleError.

    Every error names the field ``rule``, so a form marks it and the API answers ``{"rule": [...]}``.
    """
    text = (text or "").strip().upper().removeprefix("RRULE:")
    if not text:
        raise RuleError(_("Enter a recurrence rule."), field="rule")
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(_("The recurrence rule is too long."), field="rule")
    parts: dict[str, str] = {}
    for item in text.split(";"):
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise RuleError(_("“%(item)s” is not KEY=VALUE.") % {"item": item[:40]}, field="rule")
        if key not in SUPPORTED:
            raise RuleError(
                _("%(key)s is not supported; use %(keys)s.") % {"key": key[:20], "keys": ", ".join(SUPPORTED)},
                field="rule",
            )
        if key in parts:
            raise RuleError(_("%(key)s is given twice.") % {"key": key}, field="rule")
        parts[key] = value
    freq = parts.get("FREQ", "")
    if freq not in FREQUENCIES:
        raise RuleError(_("FREQ must be one of %(values)s.") % {"values": ", ".join(FREQUENCIES)}, field="rule")
    if "COUNT" in parts and "UNTIL" in parts:
        raise RuleError(_("A rule ends either after COUNT occurrences or on UNTIL, not both."), field="rule")
    until = parts.get("UNTIL")
    if until is not None and _UNTIL.match(until) is None:
        raise RuleError(_("UNTIL must look like 20261231, 20261231T235959 or 20261231T235959Z."), field="rule")
    rule = Rule(
        text="",
        freq=freq,
        interval=_ints("INTERVAL", parts["INTERVAL"], 1, MAX_INTERVAL)[0] if "INTERVAL" in parts else 1,
        byday=_byday(parts["BYDAY"], freq) if "BYDAY" in parts else (),
        bymonthday=_ints("BYMONTHDAY", parts["BYMONTHDAY"], -31, 31, zero=False) if "BYMONTHDAY" in parts else (),
        byhour=_ints("BYHOUR", parts["BYHOUR"], 0, 23) if "BYHOUR" in parts else (),
        byminute=_ints("BYMINUTE", parts["BYMINUTE"], 0, 59) if "BYMINUTE" in parts else (),
        count=_ints("COUNT", parts["COUNT"], 1, MAX_COUNT)[0] if "COUNT" in parts else None,
        until=until,
    )
    if "INTERVAL" in parts and "," in parts["INTERVAL"] or "COUNT" in parts and "," in parts["COUNT"]:
        raise RuleError(_("INTERVAL and COUNT take one number."), field="rule")
    _until(rule, UTC)  # UNTIL=20260231 is refused here, not later when the rule is first expanded
    return Rule(**{**rule.__dict__, "text": format_rule(rule)})


def format_rule(rule: Rule) -> str:
    """The canonical RRULE text of ``rule``."""
    parts = [f"FREQ={rule.freq}"]
    if rule.interval != 1:
        parts.append(f"INTERVAL={rule.interval}")
    if rule.byday:
        parts.append("BYDAY=" + ",".join(f"{n or ''}{DAY_CODES[d]}" for d, n in rule.byday))
    for key, values in (("BYMONTHDAY", rule.bymonthday), ("BYHOUR", rule.byhour), ("BYMINUTE", rule.byminute)):
        if values:
            parts.append(f"{key}=" + ",".join(str(v) for v in values))
    if rule.count is not None:
        parts.append(f"COUNT={rule.count}")
    if rule.until is not None:
        parts.append(f"UNTIL={rule.until}")
    return ";".join(parts)


def get_zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name`` or RuleError."""
    try:
        return zones.get_zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise RuleError(_("Unknown time zone “%(name)s”.") % {"name": str(name)[:64]}, field="zone") from None


# --- wall clock -> instant --------------------------------------------------------------------------


def resolve(local: datetime, zone: tzinfo) -> datetime:
    """The aware instant of the naive wall-clock time ``local`` in ``zone``.

    Gap (the offset grows at a transition): the time moves forward by the gap's length, so 02:30
    on a one-hour spring-forward day is 03:30 and 02:15 on Lord Howe's 30-minute one is 02:45.
    Overlap (the offset shrinks): the first of the two instants. Written out rather than left to
    ``fold``: zoneinfo's fold=0 reading of a gap time is an instant that reads back as another
    wall-clock time, and that must be a rule of ours, tested, not an accident of the library.
    """
    first = local.replace(tzinfo=zone, fold=0)
    second = local.replace(tzinfo=zone, fold=1)
    before, after = first.utcoffset(), second.utcoffset()
    if before is None or after is None or before >= after:  # no transition here, or an overlap
        return first.astimezone(zone)
    moved = (local + (after - before)).replace(tzinfo=zone)
    return moved.astimezone(zone)


def _local(value: datetime, zone: tzinfo) -> datetime:
    return value.astimezone(zone).replace(tzinfo=None)


def _until(rule: Rule, zone: tzinfo) -> datetime | None:
    if rule.until is None:
        return None
    match = _UNTIL.match(rule.until)
    if match is None:  # parse_rule refused it already
        return None
    y, mo, d, h, mi, s, z = match.groups()
    try:
        if h is None:
            return datetime(int(y), int(mo), int(d), 23, 59, 59)  # noqa: DTZ001 - a wall-clock time in the zone
        naive = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s))  # noqa: DTZ001 - as above
    except ValueError:
        raise RuleError(_("UNTIL is not a real date."), field="rule") from None
    return _local(naive.replace(tzinfo=UTC), zone) if z else naive


def build(rule: Rule, *, start: datetime, zone: tzinfo, near: datetime | None = None) -> du.rrule:
    """The dateutil rrule of ``rule`` over naive local times, starting at ``start`` read in ``zone``.

    ``near`` (naive local): expand from a whole number of periods later, not after ``near``, with the
    same occurrences from there on. Why: dateutil walks every period from its start to the first one
    asked for; a minutely rule started ten years back cost 20 s of CPU per answer (measured), and a
    start further back more. Rules with COUNT number their occurrences from the start: those are not
    moved (at most MAX_COUNT occurrences to walk).
    """
    dtstart = _local(start, zone).replace(microsecond=0)
    by_time = bool(rule.byhour or rule.byminute)
    parts: dict[str, Any] = {
        "byweekday": [du.weekday(d, n) for d, n in rule.byday] or None,
        "bymonthday": list(rule.bymonthday) or None,
        "byhour": list(rule.byhour) or None,
        "byminute": list(rule.byminute) or None,
        "bysecond": 0 if by_time else None,
    }
    begin = _later_start(rule, dtstart, near) if near is not None and rule.count is None else dtstart
    if begin != dtstart:  # what dateutil would take from the start is given as it was at the start
        parts = _from_start(rule, dtstart, parts)
    return du.rrule(
        FREQUENCIES[rule.freq],
        dtstart=begin,
        interval=rule.interval,
        count=rule.count,
        until=_until(rule, zone),
        cache=False,
        **parts,
    )


_PERIOD = {
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
}


def _later_start(rule: Rule, dtstart: datetime, near: datetime) -> datetime:
    """The start of the period a whole number of steps (INTERVAL periods) after ``dtstart``, two steps before ``near``.

    Naive local times, stepped as dateutil steps them: by fixed units up to weeks (so the weekday and
    the time of day stay), by calendar months for MONTHLY and YEARLY (from the 1st of the month).
    """
    if near <= dtstart:
        return dtstart
    if rule.freq in _PERIOD:
        step = _PERIOD[rule.freq] * rule.interval
        steps = (near - dtstart) // step - 2
        return dtstart + step * steps if steps > 0 else dtstart
    months = (12 if rule.freq == "YEARLY" else 1) * rule.interval
    steps = ((near.year - dtstart.year) * 12 + near.month - dtstart.month) // months - 2
    if steps <= 0:
        return dtstart
    index = dtstart.month - 1 + steps * months
    return dtstart.replace(year=dtstart.year + index // 12, month=index % 12 + 1, day=1)


def _from_start(rule: Rule, dtstart: datetime, parts: dict[str, Any]) -> dict[str, Any]:
    """``parts`` with what dateutil derives from the start when a part is not given (its rrule.__init__)."""
    given = dict(parts)
    freq = FREQUENCIES[rule.freq]
    if given["bymonthday"] is None and given["byweekday"] is None:
        if rule.freq == "YEARLY":
            given["bymonth"], given["bymonthday"] = dtstart.month, dtstart.day
        elif rule.freq == "MONTHLY":
            given["bymonthday"] = dtstart.day
        elif rule.freq == "WEEKLY":
            given["byweekday"] = dtstart.weekday()
    if given["byhour"] is None and freq < du.HOURLY:
        given["byhour"] = dtstart.hour
    if given["byminute"] is None and freq < du.MINUTELY:
        given["byminute"] = dtstart.minute
    if given["bysecond"] is None:
        given["bysecond"] = dtstart.second
    return given


def next_after(rule: Rule, *, start: datetime, zone: tzinfo, after: datetime) -> datetime | None:
    """The first occurrence strictly after the aware ``after`` (not before ``start``); None once the rule ended."""
    dtstart = _local(start, zone).replace(microsecond=0)
    # Look from a few hours back in wall-clock time: around a fall-back the local clock repeats.
    probe = max(_local(after, zone) - timedelta(hours=3), dtstart)
    expanded = build(rule, start=start, zone=zone, near=probe)
    for local in itertools.islice(expanded.xafter(probe, count=SCAN_LIMIT, inc=True), SCAN_LIMIT):
        instant = resolve(local, zone)
        if instant > after and instant >= start.replace(microsecond=0):
            return instant
    return None


def upcoming(rule: Rule, *, start: datetime, zone: tzinfo, after: datetime, limit: int = 5) -> list[datetime]:
    """The next ``limit`` occurrences strictly after ``after``: the preview of a series."""
    found: list[datetime] = []
    at = after
    while len(found) < limit:
        following = next_after(rule, start=start, zone=zone, after=at)
        if following is None:
            break
        found.append(following)
        at = following
    return found


# --- plain language ---------------------------------------------------------------------------------


def repeats_code(text: str) -> str:
    """The frequency word of a stored rule ("weekly"), for the live panel's label; "" if unreadable."""
    match = re.search(r"(?:^|;)FREQ=([A-Z]+)", text or "")
    return match.group(1).lower() if match and match.group(1) in FREQUENCIES else ""


def repeats_labels() -> dict[str, str]:
    """The live panel's label of an occurrence, by frequency word, in the active language."""
    return {
        "minutely": _("repeats every minute"),
        "hourly": _("repeats hourly"),
        "daily": _("repeats daily"),
        "weekly": _("repeats weekly"),
        "monthly": _("repeats monthly"),
        "yearly": _("repeats yearly"),
    }


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return _("%(rest)s and %(last)s") % {"rest": ", ".join(items[:-1]), "last": items[-1]}


def _ordinal_day(day: int, ordinal: int | None) -> str:
    name = str(WEEKDAYS[day])
    if ordinal is None:
        return name
    words = {
        1: _("the first %(day)s"),
        2: _("the second %(day)s"),
        3: _("the third %(day)s"),
        4: _("the fourth %(day)s"),
        5: _("the fifth %(day)s"),
        -1: _("the last %(day)s"),
    }
    if ordinal in words:
        return words[ordinal] % {"day": name}
    return _("the %(n)dth-to-last %(day)s") % {"n": -ordinal, "day": name}


def _month_day(day: int) -> str:
    if day == -1:
        return _("the last day")
    if day < 0:
        return _("the %(n)dth-to-last day") % {"n": -day}
    return _("day %(n)d") % {"n": day}


def _what(rule: Rule, start_local: datetime) -> str:
    n = rule.interval
    days = _join([_ordinal_day(d, o) for d, o in rule.byday])
    if rule.freq == "WEEKLY":
        days = days or str(WEEKDAYS[start_local.weekday()])
    elif rule.freq == "MONTHLY":
        days = _join([_month_day(d) for d in rule.bymonthday]) or days or _month_day(start_local.day)
    elif rule.freq == "YEARLY":
        days = days or start_local.strftime("%m-%d")
    if n == 1:
        one = {
            "MINUTELY": _("Every minute"),
            "HOURLY": _("Every hour"),
            "DAILY": _("Every day"),
            "WEEKLY": _("Every %(days)s"),
            "MONTHLY": _("Every month on %(days)s"),
            "YEARLY": _("Every year on %(days)s"),
        }
        return one[rule.freq] % {"days": days} if "%(days)s" in one[rule.freq] else one[rule.freq]
    many = {
        "MINUTELY": _("Every %(n)d minutes"),
        "HOURLY": _("Every %(n)d hours"),
        "DAILY": _("Every %(n)d days"),
        "WEEKLY": _("Every %(n)d weeks on %(days)s"),
        "MONTHLY": _("Every %(n)d months on %(days)s"),
        "YEARLY": _("Every %(n)d years on %(days)s"),
    }
    return many[rule.freq] % {"n": n, "days": days}


def _described(rule: Rule) -> bool:
    """Whether ``_what`` and the times say every part of ``rule``: a part left out would change the dates."""
    if rule.freq in ("MINUTELY", "HOURLY"):
        return not (rule.byday or rule.bymonthday or rule.byhour or rule.byminute)
    if rule.freq == "DAILY":
        return not (rule.byday or rule.bymonthday)
    if rule.freq == "WEEKLY":
        return not rule.bymonthday
    # MONTHLY and YEARLY: days of the month (a yearly one repeats them every month) or numbered weekdays,
    # never both (they intersect); a plain weekday means every such day, not one a month or a year.
    if rule.bymonthday:
        return rule.freq == "MONTHLY" and not rule.byday
    return all(ordinal is not None for _day, ordinal in rule.byday)


def summarize(rule: Rule, *, start: datetime, zone_name: str) -> str:
    """Say ``rule`` in the active language: "Every Monday and Thursday at 09:00, Asia/Seoul, 10 times".

    A combination of parts the words do not cover is shown as the rule itself with its start (the
    start gives the time and day a rule leaves out): plain but never contradicted by the dates.
    """
    zone = get_zone(zone_name)
    start_local = _local(start, zone)
    if not _described(rule):
        return _("Custom rule %(rule)s from %(start)s, %(zone)s") % {
            "rule": rule.text,
            "start": start_local.strftime("%Y-%m-%d %H:%M"),
            "zone": zone_name,
        }
    what = _what(rule, start_local)
    if rule.freq in ("MINUTELY", "HOURLY"):
        text = _("%(what)s, %(zone)s") % {"what": what, "zone": zone_name}
    else:
        hours = rule.byhour or (start_local.hour,)
        minutes = rule.byminute or (start_local.minute,)
        times = [f"{h:02d}:{m:02d}" for h in hours for m in minutes]
        text = _("%(what)s at %(times)s, %(zone)s") % {"what": what, "times": _join(times), "zone": zone_name}
    if rule.count is not None:
        text += ngettext(", %(n)d time", ", %(n)d times", rule.count) % {"n": rule.count}
    until = _until(rule, zone)
    if until is not None:
        text += _(", until %(date)s") % {"date": until.strftime("%Y-%m-%d")}
    return text
