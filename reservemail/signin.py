"""Sign-in limits: django-axes counts failed sign-ins; this module says who the client is and what a locked-out
client is told.

Every door that calls ``authenticate(request=...)`` is counted: ``/accounts/login/``, ``/admin/login/``, the
browsable API's ``/api/auth/login/`` and ``/api/auth/token/``. ``SIGNIN_FAILURE_LIMIT`` failures lock the account
(from any address) and the client address (for any account); the lock lifts ``SIGNIN_COOLOFF_SECONDS`` after the
failures that caused it. Refused attempts during a lock are not counted, so the time a locked-out client is told
is the time it really has to wait. A successful sign-in does not reset the count: an attacker with an account of
their own could otherwise clear their address's failures between guesses.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off, get_failure_limit
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from reservemail.exceptions import ReservemailError

LOCKED_OUT_TEMPLATE = "registration/locked_out.html"


def client_ip(request: HttpRequest) -> str:
    """The client address that failures are counted against (``AXES_CLIENT_IP_CALLABLE``).

    ``REMOTE_ADDR``, unless ``SIGNIN_TRUSTED_PROXIES`` (N) says N reverse proxies in front of the app each append
    the address they saw to ``X-Forwarded-For``: then the N-th entry from the right, the one the outermost trusted
    proxy wrote. Entries further left come from the client and are ignored, so they cannot be spoofed. A missing or
    malformed entry falls back to ``REMOTE_ADDR``.
    """
    remote = request.META.get("REMOTE_ADDR", "") or "0.0.0.0"  # noqa: S104 - a placeholder, never bound
    proxies = settings.SIGNIN_TRUSTED_PROXIES
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < proxies:
        return remote
    candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def lockout_seconds(request: Any, credentials: Mapping[str, Any] | None = None) -> int:
    """Seconds until this request's account and address may try again (0 when neither is locked).

    django-axes keeps one row per (account, address, user agent) with its failure count and the time of its
    latest failure, and drops a row once that time is older than the cool-off. A lock over a set of rows lifts
    when the newest rows alone no longer reach the limit: at the expiry of the row whose failures, counted from
    the newest, first reach the limit.
    """
    cool_off = get_cool_off(request) or timedelta(0)
    limit = get_failure_limit(request, credentials)
    AxesProxyHandler.update_request(request)
    handler = AxesProxyHandler.get_implementation()
    now = timezone.now()
    lifts_at = now
    for attempts in handler.get_user_attempts(request, dict(credentials or {})):
        counted = 0
        for failures, attempt_time in attempts.order_by("-attempt_time").values_list(
            "failures_since_start", "attempt_time"
        ):
            counted += failures
            if counted >= limit:
                lifts_at = max(lifts_at, attempt_time + cool_off)
                break
    return math.ceil((lifts_at - now).total_seconds())


def wait_text(seconds: int) -> str:
    """How long to wait, for people: whole minutes from two minutes up, seconds below."""
    if seconds >= 120:
        minutes = math.ceil(seconds / 60)
        return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    return ngettext("%(count)d second", "%(count)d seconds", seconds) % {"count": seconds}


def locked_out_message(seconds: int) -> str:
    """The one sentence every door shows a locked-out client."""
    return _("Too many failed sign-ins. Try again in %(wait)s.") % {"wait": wait_text(seconds)}


class SigninLockedError(ReservemailError):
    """Too many failed sign-ins for this account or from this address (HTTP 429, ``Retry-After``)."""

    code = "signin_locked"
    status = 429

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(locked_out_message(retry_after))
        self.retry_after = retry_after


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Mapping[str, Any] | None = None
) -> HttpResponse:
    """Answer a locked-out sign-in on a form door (``AXES_LOCKOUT_CALLABLE``): the 429 page, with ``Retry-After``.

    The token endpoint answers JSON itself (TokenLoginView raises SigninLockedError): DRF hands django-axes its
    own request object, so this middleware hook never sees that door's lock.
    """
    seconds = max(lockout_seconds(request, credentials), 1)
    context = {"message": locked_out_message(seconds), "seconds": seconds}
    response = render(request, LOCKED_OUT_TEMPLATE, context, status=429)
    response["Retry-After"] = str(seconds)
    return response
