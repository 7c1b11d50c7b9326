"""Who may read the operator's views (/metrics, the details of /healthz): staff, or the METRICS_TOKEN bearer."""

from __future__ import annotations

from hmac import compare_digest

from django.conf import settings
from django.http import HttpRequest


def may_monitor(request: HttpRequest) -> bool:
    """A staff session, or ``Authorization: Bearer <METRICS_TOKEN>`` when that token is set."""
    if getattr(request.user, "is_staff", False):
        return True
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    return (
        bool(token) and header.startswith("Bearer ") and compare_digest(header.removeprefix("Bearer ").strip(), token)
    )
