"""The poll endpoint the page calls every few seconds, and the close button's dismiss."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from notifications.query import parse_since
from notifications.selectors import poll_items
from notifications.services import dismiss_entries
from reservemail.http import AuthedRequest


def signed_in(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 401 JSON (not a redirect to the sign-in page) when nobody is signed in."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if not request.user.is_authenticated:
            return JsonResponse({"detail": _("Sign in first."), "code": "not_authenticated"}, status=401)
        return view(request, *args, **kwargs)

    return wrapper


def _server_time(response: HttpResponse) -> HttpResponse:
    # The page corrects its clock with this, so a countdown ticks from the server's "now".
    response["X-Server-Time"] = f"{timezone.now().timestamp():.3f}"
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@signed_in
def poll(request: AuthedRequest) -> HttpResponse:
    """Return ``[{name, data, timestamp}]`` of the user's rows changed after ``since``."""
    try:
        since = parse_since(request.GET.get("since"))
    except ValueError as exc:  # the same answer as the API's poll (notifications.api)
        return JsonResponse({"since": [str(exc)]}, status=400)
    items = poll_items(
        owner_id=request.user.pk,
        since=since,
        now=timezone.now(),
        language=get_language() or "en",
        tz=timezone.get_current_timezone(),
    )
    return _server_time(JsonResponse(items, safe=False))


@require_POST
@signed_in
def dismiss(request: AuthedRequest) -> HttpResponse:
    """Drop ended tasks ``task_id`` (repeatable form field) from the user's lists: POST with CSRF."""
    try:
        task_ids = [int(value) for value in request.POST.getlist("task_id")]
    except ValueError:
        return JsonResponse({"detail": _("task_id must be a number."), "code": "invalid"}, status=400)
    removed = dismiss_entries(owner_id=request.user.pk, task_ids=task_ids)
    return _server_time(JsonResponse({"removed": removed}))
