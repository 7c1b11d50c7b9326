"""Who may read the operator's views (/metrics, the details of /healthz, the RQ stats): staff, or a bearer token."""

from __future__ import annotations

from hmac import compare_digest

from django.conf import settings
from django.http import HttpRequest


def may_monitor(request: HttpRequest) -> bool:
    """A staff session, or ``Authorization: Bearer <METRICS_TOKEN>`` when that token is set."""
    return bool(getattr(request.user, "is_staff", False)) or bearer_matches(request, settings.METRICS_TOKEN)


def bearer_matches(request: HttpRequest, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>``; never for an empty token.

    Compared as bytes: ``compare_digest`` refuses str with non-ASCII characters (TypeError, a 500),
    and a header may carry any Latin-1 character.
    """
    header = request.headers.get("Authorization", "")
    if not token or not header.startswith("Bearer "):
        return False
    sent = header.removeprefix("Bearer ").strip()
    return compare_digest(sent.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape"))
