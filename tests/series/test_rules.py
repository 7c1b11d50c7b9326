"""Recurrence rules as wall-clock time in a zone: DST gaps and overlaps, month ends, COUNT/UNTIL, summaries."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import translation

from series.exceptions import RuleError
from series.rules import SCAN_LIMIT, _local, build, next_after, parse_rule, resolve, summarize, upcoming

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SEOUL = ZoneInfo("Asia/Seoul")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def dates(rule, start, zone, n=5, after=None):
    got = upcoming(parse_rule(rule), start=start, zone=zone, after=after or start - timedelta(seconds=1), limit=n)
    return [(d.strftime("%Y-%m-%d %H:%M"), d.utcoffset()) for d in got]


def wall(*args):
    """A naive wall-clock time, as the rule expansion produces."""
    return datetime(*args, tzinfo=UTC).replace(tzinfo=None)


def h(hours, minutes=0):
    return timedelta(hours=hours, minutes=minutes)


def test_resolve_moves_a_spring_forward_gap_time_forward_by_the_gap():
    got = resolve(wall(2026, 3, 8, 2, 30), NY)  # 02:00 -> 03:00 EST->EDT
    assert got.utcoffset() == h(-4)
    assert (got.hour, got.minute) == (3, 30)
    assert got.astimezone(UTC) == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    # It reads back as the same wall-clock time (zoneinfo's fold=0 instant would read back as 01:30 or 03:30).
    assert got.astimezone(UTC).astimezone(NY).replace(tzinfo=None) == wall(2026, 3, 8, 3, 30)


def test_resolve_takes_the_first_of_an_ambiguous_fall_back_time():
    got = resolve(wall(2026, 11, 1, 1, 30), NY)  # 01:00-02:00 happens twice
    assert got.utcoffset() == h(-4)  # EDT, the first
    assert got.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_new_york_weekly_0230_across_spring_forward():
    start = datetime(2026, 3, 1, 2, 30, tzinfo=NY)
    assert dates("FREQ=WEEKLY;BYDAY=SU;BYHOUR=2;BYMINUTE=30", start, NY, 3) == [
        ("2026-03-01 02:30", h(-5)),
        ("2026-03-08 03:30", h(-4)),  # 02:30 does not exist that day: forward by the one-hour gap
        ("2026-03-15 02:30", h(-4)),
    ]


def test_new_york_0900_stays_0900_local_across_both_changes():
    start = datetime(2026, 3, 6, 9, 0, tzinfo=NY)
    got = dates("FREQ=DAILY;BYHOUR=9;BYMINUTE=0", start, NY, 4)
    assert [d for d, _ in got] == ["2026-03-06 09:00", "2026-03-07 09:00", "2026-03-08 09:00", "2026-03-09 09:00"]
    assert [o for _, o in got] == [h(-5), h(-5), h(-4), h(-4)]
    autumn = dates("FREQ=DAILY;BYHOUR=9", datetime(2026, 10, 31, 9, 0, tzinfo=NY), NY, 2)
    assert autumn == [("2026-10-31 09:00", h(-4)), ("2026-11-01 09:00", h(-5))]


def test_berlin_daily_0130_across_fall_back_keeps_local_time():
    start = datetime(2026, 10, 24, 1, 30, tzinfo=BERLIN)
    assert dates("FREQ=DAILY;BYHOUR=1;BYMINUTE=30", start, BERLIN, 3) == [
        ("2026-10-24 01:30", h(2)),
        ("2026-10-25 01:30", h(2)),  # the change is at 03:00 CEST: 01:30 is still summer time
        ("2026-10-26 01:30", h(1)),
    ]


def test_berlin_daily_0230_on_fall_back_day_is_sent_once_at_the_first():
    start = datetime(2026, 10, 24, 2, 30, tzinfo=BERLIN)
    got = upcoming(
        parse_rule("FREQ=DAILY;BYHOUR=2;BYMINUTE=30"), start=start, zone=BERLIN, after=start - h(0, 1), limit=3
    )
    assert [d.astimezone(UTC).strftime("%m-%d %H:%M") for d in got] == ["10-24 00:30", "10-25 00:30", "10-26 01:30"]


def test_berlin_weekly_0230_across_spring_forward():
    start = datetime(2026, 3, 22, 2, 30, tzinfo=BERLIN)
    assert dates("FREQ=WEEKLY;BYHOUR=2;BYMINUTE=30", start, BERLIN, 3) == [
        ("2026-03-22 02:30", h(1)),
        ("2026-03-29 03:30", h(2)),
        ("2026-04-05 02:30", h(2)),
    ]


def test_seoul_has_no_shift():
    start = datetime(2026, 3, 1, 9, 0, tzinfo=SEOUL)
    got = dates("FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0;COUNT=10", start, SEOUL, 12)
    assert len(got) == 10 and all(o == h(9) for _, o in got)
    assert got[:3] == [("2026-03-02 09:00", h(9)), ("2026-03-05 09:00", h(9)), ("2026-03-09 09:00", h(9))]


def test_lord_howe_half_hour_gap_and_overlap():
    spring = datetime(2026, 10, 3, 2, 15, tzinfo=LORD_HOWE)
    assert dates("FREQ=DAILY;BYHOUR=2;BYMINUTE=15", spring, LORD_HOWE, 3) == [
        ("2026-10-03 02:15", h(10, 30)),
        ("2026-10-04 02:45", h(11)),  # 02:00 -> 02:30: forward by the 30-minute gap
        ("2026-10-05 02:15", h(11)),
    ]
    autumn = datetime(2026, 4, 4, 1, 45, tzinfo=LORD_HOWE)
    got = upcoming(parse_rule("FREQ=DAILY;BYHOUR=1;BYMINUTE=45"), start=autumn, zone=LORD_HOWE, after=autumn - h(1))
    assert [d.utcoffset() for d in got[:3]] == [h(11), h(11), h(10, 30)]  # 04-05 01:45 twice: the first, +11:00


def test_month_end_31_skips_short_months_and_minus_one_is_the_last_day():
    start = datetime(2026, 1, 1, 8, 0, tzinfo=SEOUL)
    assert [d for d, _ in dates("FREQ=MONTHLY;BYMONTHDAY=31;BYHOUR=8", start, SEOUL, 3)] == [
        "2026-01-31 08:00",
        "2026-03-31 08:00",
        "2026-05-31 08:00",
    ]
    assert [d for d, _ in dates("FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=8", start, SEOUL, 3)] == [
        "2026-01-31 08:00",
        "2026-02-28 08:00",
        "2026-03-31 08:00",
    ]


def test_ordinal_weekdays():
    start = datetime(2026, 1, 1, 10, 0, tzinfo=SEOUL)
    assert [d for d, _ in dates("FREQ=MONTHLY;BYDAY=1MO", start, SEOUL, 2)] == ["2026-01-05 10:00", "2026-02-02 10:00"]
    assert [d for d, _ in dates("FREQ=MONTHLY;BYDAY=-1FR", start, SEOUL, 2)] == ["2026-01-30 10:00", "2026-02-27 10:00"]


def test_count_and_until_end_the_rule():
    start = datetime(2026, 1, 1, 10, 0, tzinfo=SEOUL)
    assert len(dates("FREQ=DAILY;COUNT=3", start, SEOUL, 10)) == 3
    assert next_after(parse_rule("FREQ=DAILY;COUNT=3"), start=start, zone=SEOUL, after=start + h(48)) is None
    assert [d for d, _ in dates("FREQ=DAILY;UNTIL=20260103", start, SEOUL, 10)] == [
        "2026-01-01 10:00",
        "2026-01-02 10:00",
        "2026-01-03 10:00",
    ]
    # UNTIL in UTC: 2026-01-02T01:00Z is 10:00 in Seoul, inclusive.
    assert len(dates("FREQ=DAILY;UNTIL=20260102T010000Z", start, SEOUL, 10)) == 2


def test_interval_and_minutely():
    start = datetime(2026, 1, 1, 10, 0, 7, tzinfo=SEOUL)
    got = upcoming(parse_rule("FREQ=MINUTELY;INTERVAL=2;COUNT=3"), start=start, zone=SEOUL, after=start - h(0, 1))
    assert [d.strftime("%H:%M:%S") for d in got] == ["10:00:07", "10:02:07", "10:04:07"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Enter a recurrence rule."),
        ("FREQ=SECONDLY", "FREQ must be one of MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY."),
        ("FREQ=DAILY;BYSETPOS=1", "BYSETPOS is not supported; use FREQ, INTERVAL, BYDAY, BYMONTHDAY, BYHOUR,"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20260101", "A rule ends either after COUNT occurrences or on UNTIL, not both."),
        ("FREQ=DAILY;BYHOUR=24", "BYHOUR value 24 is out of range."),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY value 0 is out of range."),
        ("FREQ=WEEKLY;BYDAY=1MO", "A numbered weekday (such as 1MO) needs FREQ=MONTHLY or YEARLY"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY value “XX” is not a weekday such as MO, 1MO or -1FR."),
        ("FREQ=DAILY;UNTIL=tomorrow", "UNTIL must look like 20261231, 20261231T235959 or 20261231T235959Z."),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice."),
        ("FREQ", "“FREQ” is not KEY=VALUE."),
    ],
)
def test_parse_rule_refuses_what_it_does_not_support(text, message):
    with pytest.raises(RuleError) as caught:
        parse_rule(text)
    assert str(caught.value).startswith(message)
    assert caught.value.field == "rule"  # a form marks the rule, the API answers {"rule": [...]}


def test_parse_rule_refuses_an_until_that_is_not_a_real_date():
    with pytest.raises(RuleError) as caught:
        parse_rule("FREQ=DAILY;UNTIL=20260231")
    assert (str(caught.value), caught.value.field) == ("UNTIL is not a real date.", "rule")


def test_parse_rule_canonical_text():
    assert parse_rule("rrule:byday=th,mo;freq=weekly;byhour=9;byminute=0").text == (
        "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0"
    )


def test_summary_in_english_and_korean():
    rule = parse_rule("FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0;COUNT=10")
    start = datetime(2026, 3, 1, 9, 0, tzinfo=SEOUL)
    with translation.override("en"):
        assert summarize(rule, start=start, zone_name="Asia/Seoul") == (
            "Every Monday and Thursday at 09:00, Asia/Seoul, 10 times"
        )
        monthly = parse_rule("FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=18;BYMINUTE=30;UNTIL=20261231")
        assert summarize(monthly, start=start, zone_name="Asia/Seoul") == (
            "Every month on the last day at 18:30, Asia/Seoul, until 2026-12-31"
        )
        assert summarize(parse_rule("FREQ=DAILY;INTERVAL=2"), start=start, zone_name="Europe/Berlin") == (
            "Every 2 days at 01:00, Europe/Berlin"  # the start, read in Berlin
        )
        assert summarize(parse_rule("FREQ=MONTHLY;BYDAY=1MO"), start=start, zone_name="Asia/Seoul") == (
            "Every month on the first Monday at 09:00, Asia/Seoul"
        )
    with translation.override("ko"):
        assert summarize(rule, start=start, zone_name="Asia/Seoul") == "매주 월요일, 목요일 09:00, Asia/Seoul, 10회"
        assert summarize(monthly, start=start, zone_name="Asia/Seoul") == (
            "매월 마지막 날 18:30, Asia/Seoul, 2026-12-31까지"
        )


SUMMARY_START = datetime(2026, 3, 2, 7, 14, tzinfo=SEOUL)  # a Monday


@pytest.mark.parametrize(
    "text",
    [
        "FREQ=DAILY;BYDAY=MO,WE",
        "FREQ=MONTHLY;BYMONTHDAY=13;BYDAY=FR",
        "FREQ=YEARLY;BYMONTHDAY=30;BYDAY=MO",
        "FREQ=HOURLY;INTERVAL=3;BYMINUTE=15",
    ],
)
def test_summary_of_parts_it_cannot_say_is_the_rule_itself(text):
    rule = parse_rule(text)
    with translation.override("en"):
        assert summarize(rule, start=SUMMARY_START, zone_name="Asia/Seoul") == (
            f"Custom rule {rule.text} from 2026-03-02 07:14, Asia/Seoul"
        )


PARTS = {"BYDAY=MO,WE": ("Monday", "Wednesday"), "BYDAY=1MO": ("the first Monday",), "BYMONTHDAY=13": ("day 13",)}
PARTS |= {"BYHOUR=9": ("09:",), "BYMINUTE=15": (":15",)}


def _combinations():
    for freq in ("MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"):
        for mask in range(1 << len(PARTS)):
            chosen = [part for i, part in enumerate(PARTS) if mask >> i & 1]
            if not ("BYDAY=MO,WE" in chosen and "BYDAY=1MO" in chosen):
                yield ";".join([f"FREQ={freq}", *chosen])


@pytest.mark.parametrize("text", list(_combinations()))
def test_summary_never_says_what_the_dates_contradict(text):
    """Every combination of parts: the rule itself, or words that name each part and fit the dates."""
    try:
        rule = parse_rule(text)
    except RuleError:  # a numbered weekday outside monthly and yearly rules
        return
    with translation.override("en"):
        said = summarize(rule, start=SUMMARY_START, zone_name="Asia/Seoul")
    if said == f"Custom rule {rule.text} from 2026-03-02 07:14, Asia/Seoul":
        return
    for part in text.split(";")[1:]:
        assert all(word in said for word in PARTS[part]), (text, said)
    got = [d.astimezone(SEOUL) for d in upcoming(rule, start=SUMMARY_START, zone=SEOUL, after=SUMMARY_START, limit=30)]
    per_period = len(rule.byhour or [0]) * len(rule.byminute or [0]) * len(rule.byday or rule.bymonthday or [0])
    period = {"Every day": "%Y-%m-%d", "Every month": "%Y-%m", "Every year": "%Y"}
    for opening, key in period.items():
        if said.startswith(opening + " "):  # "Every day", not "Every 3 days": one period after the other
            counted = [d.strftime(key) for d in got]
            assert max(counted.count(k) for k in counted) <= per_period, (text, said)
    if rule.freq == "DAILY":
        days = sorted({d.date() for d in got})
        assert all((b - a).days == 1 for a, b in zip(days, days[1:], strict=False)), (text, said)


# --- a start long ago: the expansion begins near the answer, with the same answers -----------------

LONG_AGO_RULES = [
    "FREQ=MINUTELY;INTERVAL=97",
    "FREQ=HOURLY;INTERVAL=5;BYMINUTE=15,45",
    "FREQ=DAILY",
    "FREQ=DAILY;INTERVAL=3;BYHOUR=9,17",
    "FREQ=WEEKLY;INTERVAL=2",
    "FREQ=WEEKLY;BYDAY=MO,FR;BYHOUR=9;BYMINUTE=30",
    "FREQ=MONTHLY",
    "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=31",
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY;INTERVAL=2;BYDAY=MO;BYMONTHDAY=13",
    "FREQ=YEARLY",
    "FREQ=YEARLY;INTERVAL=3",
    "FREQ=YEARLY;BYDAY=2SU",
    "FREQ=DAILY;UNTIL=20300101",
]


def reference_next_after(rule, *, start, zone, after):
    """next_after as it was: the expansion walks from the start itself."""
    expanded = build(rule, start=start, zone=zone)
    probe = max(_local(after, zone) - timedelta(hours=3), _local(start, zone).replace(microsecond=0))
    for local in expanded.xafter(probe, count=SCAN_LIMIT, inc=True):
        instant = resolve(local, zone)
        if instant > after and instant >= start.replace(microsecond=0):
            return instant
    return None


@pytest.mark.parametrize("text", LONG_AGO_RULES)
@pytest.mark.parametrize(
    "start",
    [datetime(2023, 1, 31, 23, 59, 42, tzinfo=NY), datetime(2020, 2, 29, 2, 30, tzinfo=BERLIN)],
    ids=["jan31-ny", "feb29-berlin"],
)
def test_a_start_years_back_gives_the_answers_of_a_walk_from_the_start(text, start):
    rule = parse_rule(text)
    zone = start.tzinfo
    after = datetime(2026, 3, 8, 1, 0, tzinfo=UTC)  # New York's spring-forward day
    for _ in range(4):
        expected = reference_next_after(rule, start=start, zone=zone, after=after)
        assert next_after(rule, start=start, zone=zone, after=after) == expected
        if expected is None:
            break
        after = expected


@pytest.mark.parametrize(
    ("text", "period"),
    [("FREQ=MINUTELY", timedelta(minutes=1)), ("FREQ=DAILY;INTERVAL=2", timedelta(days=2))],
)
def test_a_start_long_ago_is_not_walked_from(text, period):
    """What dateutil walks is counted in periods from where the expansion begins: a few, not ten years' worth."""
    start = datetime(1990, 1, 1, 9, 0, tzinfo=SEOUL)
    probe = _local(datetime(2026, 12, 6, 12, 0, tzinfo=UTC), SEOUL)
    begin = build(parse_rule(text), start=start, zone=SEOUL, near=probe)._dtstart
    assert probe - 3 * period <= begin <= probe
