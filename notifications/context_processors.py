"""Template context shared by every page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from tasks.selectors import list_unfinished_of


def tasks_in_progress(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's unfinished tasks, for the panel in base.html (a lazy queryset)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"tasks_in_progress": []}
    return {"tasks_in_progress": list_unfinished_of(user)[:50]}
