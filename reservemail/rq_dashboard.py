"""The django-rq dashboard, for staff who hold its permission only.

django-rq's views check ``is_staff`` alone, but the dashboard can delete, requeue and stop jobs,
which bypasses the task services. So both ways in (``/admin/django-rq/`` and the "Django-RQ"
entry of the admin index) also require the ``django_rq.admin`` permission; superusers have it.

``stats.json`` (queue counts, and the Redis host and port) answers the same staff, or a scraper
that sends ``Authorization: Bearer $METRICS_TOKEN`` (``RQ_API_TOKEN``). django-rq's form with the
token in the URL path is not mounted: URLs end up in access logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, re_path
from django.views.decorators.cache import never_cache
from django_rq import stats_views
from django_rq.admin import QueueAdmin
from django_rq.urls import get_admin_urlpatterns
from rq.exceptions import NoSuchJobError

from reservemail import csp
from reservemail.monitoring import bearer_matches

logger = logging.getLogger(__name__)

PERMISSION = "django_rq.admin"
View = Callable[..., HttpResponse]


# django-rq's own templates run inline scripts (select all, confirm): its pages alone allow them.
DASHBOARD_CSP = csp.policy(script_src="'self' 'unsafe-inline'")


def guard(view: View, *, site: admin.AdminSite = admin.site, current_app: str | None = None) -> View:
    """Send anonymous and non-staff users to the admin login; answer 403 to staff without PERMISSION."""
    checked = site.admin_view(permission_required(PERMISSION, raise_exception=True)(_missing_is_404(view)))

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if current_app:
            request.current_app = current_app
        response = checked(request, *args, **kwargs)
        response[csp.HEADER] = DASHBOARD_CSP
        return response

    return wrapper


def _missing_is_404(view: View) -> View:
    """A URL naming a job, queue, worker or scheduler that does not exist answers 404, not 500.

    Why: django-rq's views look the name up and let the error through (NoSuchJobError for a job id,
    IndexError for a queue number, ValueError for a worker key, ImproperlyConfigured for the
    rq-scheduler page, which RQ's own scheduler does not use).
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except (NoSuchJobError, IndexError, ValueError, ImproperlyConfigured) as exc:
            logger.info("django-rq dashboard: %s %s: %s", request.method, request.path, exc)
            raise Http404(str(exc)) from exc

    return wrapper


def guard_api(view: View) -> View:
    """Let staff with PERMISSION or the RQ_API_TOKEN bearer through; 403 JSON for other staff, 401 for the rest."""

    @never_cache
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        staff = user.is_active and user.is_staff and user.has_perm(PERMISSION)
        if staff or bearer_matches(request, settings.RQ_API_TOKEN):
            return view(request, *args, **kwargs)
        if user.is_authenticated:
            body = {"detail": "The django_rq.admin permission is required.", "code": "forbidden"}
            return JsonResponse(body, status=403)
        response = JsonResponse(
            {"detail": "A staff session or the METRICS_TOKEN bearer token is required.", "code": "not_authenticated"},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="rq"'
        return response

    return wrapper


def api_urlpatterns(name_prefix: str = "") -> list[URLPattern]:
    """django-rq's stats.json, guarded (its Prometheus view needs prometheus_client, which is not installed)."""
    return [re_path(r"^stats.json/?$", guard_api(stats_views.stats_json), name=f"{name_prefix}home_json")]


def urlpatterns() -> list[URLPattern]:
    """django_rq.urls with every view guarded."""
    return api_urlpatterns() + get_admin_urlpatterns(view_wrapper=guard)


class DashboardAdmin(QueueAdmin):
    """The "Django-RQ" entry of the admin index, with the permission checked on every page."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(PERMISSION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(PERMISSION)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(PERMISSION)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return guard(super().changelist_view, site=self.admin_site)(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        def wrap(view: View) -> View:
            return guard(view, site=self.admin_site, current_app=self.admin_site.name)

        # The changelist only: the dashboard's stand-in model has no table, so its change, delete and
        # history pages could only fail (500).
        own = [url for url in admin.ModelAdmin.get_urls(self) if url.name and url.name.endswith("_changelist")]
        return (
            api_urlpatterns(name_prefix="django_rq_")
            + get_admin_urlpatterns(name_prefix="django_rq_", view_wrapper=wrap)
            + own
        )
