"""Activate the signed-in user's own time zone, else TIME_ZONE.

The zone is stored per user (preferences.UserPreference) and cached in the session, so a page
costs no extra query once the session knows it; the settings page refreshes the cache.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from preferences.selectors import get_time_zone_of
from reservemail.zones import get_zone

SESSION_KEY = "reservemail_timezone"


def remember_time_zone(request: HttpRequest, name: str) -> None:
    """Cache the user's zone name ("" = site default) in the session and activate it now."""
    request.session[SESSION_KEY] = name
    _activate(name)


def _activate(name: str | None) -> None:
    try:
        if name:
            timezone.activate(get_zone(name))  # a stored zone that names no place: the default
        else:
            timezone.deactivate()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        timezone.deactivate()


class UserTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = getattr(request, "session", None)
        name = session.get(SESSION_KEY) if session is not None else None
        user = getattr(request, "user", None)
        if name is None and session is not None and user is not None and user.is_authenticated:
            name = get_time_zone_of(user.pk)
            session[SESSION_KEY] = name
        _activate(name)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
