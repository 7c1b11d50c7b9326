"""Reads of user preferences."""

from __future__ import annotations

from preferences.models import UserPreference
from reservemail.zones import zone_names


def available_time_zones() -> tuple[str, ...]:
    """The choices of the time-zone setting: every zone that names a place (reservemail.zones)."""
    return zone_names()


def get_time_zone_of(user_id: int) -> str:
    """Return the user's chosen zone name, or "" when they keep the site's default."""
    return UserPreference.objects.filter(user_id=user_id).values_list("time_zone", flat=True).first() or ""
