"""Time left until a reservation, as text in the reader's language. Pure: no clock, no ORM.

The same unit table is handed to the page's script, so the countdown that ticks in the browser
reads exactly like the ``remaining_text`` the poll endpoint returns.
"""

from __future__ import annotations

from typing import TypedDict


class Units(TypedDict):
    """How one language writes a duration: unit suffixes, the joiner, and the frames around it."""

    month: str
    day: str
    hour: str
    minute: str
    second: str
    joiner: str
    left: str  # "%s" is the duration
    due: str  # shown when nothing is left (0 s or past)


UNITS: dict[str, Units] = {
    # Korean as in the original product: "2일 3시 5분 10초 남음".
    "ko": {
        "month": "개월",
        "day": "일",
        "hour": "시",
        "minute": "분",
        "second": "초",
        "joiner": " ",
        "left": "%s 남음",
        "due": "곧 발송",
    },
    "en": {
        "month": "mo",
        "day": "d",
        "hour": "h",
        "minute": "m",
        "second": "s",
        "joiner": " ",
        "left": "%s left",
        "due": "due now",
    },
}
DEFAULT_LANGUAGE = "en"
# A month is 30 days here: good enough for "how long until", and the same in every calendar.
MINUTE, HOUR, DAY, MONTH = 60, 3600, 86400, 30 * 86400


def units_for(language: str | None) -> Units:
    """Return the unit table of ``language`` ("ko", "ko-kr", "en-us" ...), English if unknown."""
    code = (language or DEFAULT_LANGUAGE).lower().replace("_", "-").split("-")[0]
    return UNITS.get(code, UNITS[DEFAULT_LANGUAGE])


def format_remaining(seconds: int, language: str | None) -> str:
    """Write ``seconds`` left as "2일 3시 5분 10초 남음" / "2d 3h 5m 10s left".

    Units run from the largest non-zero one down, zero units are left out ("1h left", not
    "1h 0m 0s left"), and nothing left (zero or negative) reads "곧 발송" / "due now".
    """
    return remaining_text(seconds, units_for(language))


def remaining_text(seconds: int, units: Units) -> str:
    """format_remaining with the unit table already looked up, for a poll that writes hundreds.

    Written out unit by unit rather than as a loop over a unit table: it runs for every entry of every poll.
    """
    if seconds <= 0:
        return units["due"]
    months, rest = divmod(int(seconds), MONTH)
    days, rest = divmod(rest, DAY)
    hours, rest = divmod(rest, HOUR)
    minutes, secs = divmod(rest, MINUTE)
    parts = []
    if months:
        parts.append(f"{months}{units['month']}")
    if days:
        parts.append(f"{days}{units['day']}")
    if hours:
        parts.append(f"{hours}{units['hour']}")
    if minutes:
        parts.append(f"{minutes}{units['minute']}")
    if secs:
        parts.append(f"{secs}{units['second']}")
    return units["left"] % units["joiner"].join(parts)
