"""Reads of user preferences."""

from __future__ import annotations

import zoneinfo
from functools import lru_cache

from preferences.models import UserPreference


@lru_cache(maxsize=1)
def available_time_zones() -> tuple[str, ...]:
    """Every IANA zone this machine knows, sorted; the choices of the time-zone setting."""
    return tuple(sorted(zoneinfo.available_timezones()))


def get_time_zone_of(user_id: int) -> str:
    """Return the user's chosen zone name, or "" when they keep the site's default."""
    return UserPreference.objects.filter(user_id=user_id).values_list("time_zone", flat=True).first() or ""
