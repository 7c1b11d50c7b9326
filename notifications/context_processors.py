"""Template context shared by every page: the "tasks in progress" panel and its script's setup."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from notifications.remaining import units_for
from series.rules import repeats_labels
from tasks.selectors import list_unfinished_of

PANEL_SIZE = 50


def live_strings(language: str | None) -> dict[str, Any]:
    """Words the panel's script needs, in the page's language (the script has no catalog)."""
    return {
        "units": units_for(language),
        "status": {
            "reserved": _("Reserved"),
            "due": _("Starting…"),
            "queued": _("Waiting to send"),
            "running": _("Sending"),
            "finished": _("Sent"),
            "failed": _("Finished with errors"),
            "canceled": _("Canceled"),
        },
        "cancel": _("Cancel"),
        "stop": _("Stop"),
        "close": _("Close"),
        "confirm_cancel": _("Cancel mail #%(id)s?"),
        "confirm_stop": _("Stop sending mail #%(id)s? What went out already stays sent."),
        "repeats": repeats_labels(),
    }


def tasks_in_progress(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's unfinished tasks (a lazy queryset) and the live panel's settings."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"tasks_in_progress": []}
    return {
        # As the page's script orders them: sends without a time first, then reservations soonest first.
        "tasks_in_progress": list_unfinished_of(user)
        .select_related("series")
        .only("pk", "description", "status", "progress", "reserved_at", "failed", "series__rule")
        .order_by(F("reserved_at").asc(nulls_first=True), "pk")[:PANEL_SIZE],
        "live_panel": {
            "poll_seconds": settings.NOTIFICATION_POLL_SECONDS,
            "server_time": f"{timezone.now().timestamp():.3f}",
            "time_zone": timezone.get_current_timezone_name(),
            "strings": live_strings(get_language()),
        },
    }
