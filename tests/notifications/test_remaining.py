"""format_remaining: the time left, written as the original product wrote it (ko) and in English."""

import pytest

from notifications.remaining import format_remaining, units_for

DAY = 86400


@pytest.mark.parametrize(
    ("seconds", "ko", "en"),
    [
        pytest.param(0, "곧 발송", "due now", id="zero"),
        pytest.param(-1, "곧 발송", "due now", id="one-second-late"),
        pytest.param(-3 * DAY, "곧 발송", "due now", id="days-late"),
        pytest.param(1, "1초 남음", "1s left", id="one-second"),
        pytest.param(59, "59초 남음", "59s left", id="59s"),
        pytest.param(60, "1분 남음", "1m left", id="one-minute"),
        pytest.param(61, "1분 1초 남음", "1m 1s left", id="61s"),
        pytest.param(3600, "1시 남음", "1h left", id="exactly-one-hour"),
        pytest.param(3601, "1시 1초 남음", "1h 1s left", id="hour-and-second-skips-zero-minutes"),
        pytest.param(2 * DAY + 3 * 3600 + 5 * 60 + 10, "2일 3시 5분 10초 남음", "2d 3h 5m 10s left", id="days"),
        pytest.param(29 * DAY + 86399, "29일 23시 59분 59초 남음", "29d 23h 59m 59s left", id="just-under-a-month"),
        pytest.param(30 * DAY, "1개월 남음", "1mo left", id="one-month"),
        pytest.param(40 * DAY + 7200, "1개월 10일 2시 남음", "1mo 10d 2h left", id="month-and-days"),
        pytest.param(365 * DAY, "12개월 5일 남음", "12mo 5d left", id="a-year-in-months"),
    ],
)
def test_format_remaining_table(seconds, ko, en):
    assert format_remaining(seconds, "ko") == ko
    assert format_remaining(seconds, "en") == en


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ko-kr", "5초 남음"),
        ("ko_KR", "5초 남음"),
        ("en-us", "5s left"),
        ("fr", "5s left"),
        (None, "5s left"),
        ("", "5s left"),
    ],
)
def test_format_remaining_language_codes_fall_back_to_english(language, expected):
    assert format_remaining(5, language) == expected


def test_units_for_returns_the_table_the_page_script_uses():
    assert units_for("ko")["left"] == "%s 남음"
    assert set(units_for("en")) == {"month", "day", "hour", "minute", "second", "joiner", "left", "due"}
