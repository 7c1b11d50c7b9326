"""The poll endpoint the page calls every few seconds."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from notifications.selectors import list_changed_since


@require_GET
@login_required
def poll(request: HttpRequest) -> JsonResponse:
    """Return ``[{name, data, timestamp}]`` of the user's rows changed after ``since``."""
    try:
        since = float(request.GET.get("since", "0") or 0)
    except ValueError:
        return JsonResponse({"detail": "since must be a number", "code": "invalid"}, status=400)
    rows = list_changed_since(owner_id=request.user.pk, since=since)
    items = [{"name": n.name, "data": n.payload.get("data"), "timestamp": n.timestamp} for n in rows]
    response = JsonResponse(items, safe=False)
    response["X-Server-Time"] = f"{timezone.now().timestamp():.3f}"
    return response
