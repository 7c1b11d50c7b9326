"""The django-rq dashboard, for staff who hold its permission only.

django-rq's views check ``is_staff`` alone, but the dashboard can delete, requeue and stop jobs,
which bypasses the task services. So both ways in (``/admin/django-rq/`` and the "Django-RQ"
entry of the admin index) also require the ``django_rq.admin`` permission; superusers have it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern
from django_rq.admin import QueueAdmin
from django_rq.urls import get_admin_urlpatterns, get_api_urlpatterns

PERMISSION = "django_rq.admin"
View = Callable[..., HttpResponse]


def guard(view: View, *, site: admin.AdminSite = admin.site, current_app: str | None = None) -> View:
    """Send anonymous and non-staff users to the admin login; answer 403 to staff without PERMISSION."""
    checked = site.admin_view(permission_required(PERMISSION, raise_exception=True)(view))

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if current_app:
            request.current_app = current_app
        return checked(request, *args, **kwargs)

    return wrapper


def urlpatterns() -> list[URLPattern]:
    """django_rq.urls with every dashboard view guarded (stats.json keeps its own token check)."""
    return get_api_urlpatterns() + get_admin_urlpatterns(view_wrapper=guard)


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

        own = list(admin.ModelAdmin.get_urls(self))
        return (
            get_api_urlpatterns(name_prefix="django_rq_")
            + get_admin_urlpatterns(name_prefix="django_rq_", view_wrapper=wrap)
            + own
        )
