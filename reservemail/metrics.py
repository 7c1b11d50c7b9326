"""GET /metrics: Prometheus text format, for staff sessions or a bearer token (METRICS_TOKEN)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from reservemail.monitoring import may_monitor
from tasks.metrics import collect_metrics, render_prometheus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Render the metrics; 401 without a staff session or the METRICS_TOKEN bearer token."""
    if not may_monitor(request):
        response = HttpResponse("Authentication required: a staff session or METRICS_TOKEN.\n", status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    return HttpResponse(render_prometheus(collect_metrics(now=timezone.now())), content_type=CONTENT_TYPE)
