"""The URLs under /api/: the router of every app's API, token login, schema and docs."""

from __future__ import annotations

from django.contrib.auth.views import LoginView, LogoutView
from django.urls import URLPattern, URLResolver, include, path, re_path
from rest_framework.routers import DefaultRouter

from notifications.api import NotificationPollView
from reservemail.api import OfflineRedocView, SwaggerView, TokenLoginView, not_found
from reservemail.api_schema import EnglishSchemaView
from reservemail.login_forms import LoginForm
from series.api import SeriesViewSet
from subscriptions.api import SuppressionViewSet
from tasks.api import TaskViewSet


class JsonRouter(DefaultRouter):
    """The router without ``.json``-suffixed twins of each route: the API speaks JSON only.

    Why: the twins passed ``format`` to actions that take no such argument (a 500 for ``POST
    /api/tasks.json/``); without them such a path is the API's 404.
    """

    include_format_suffixes = False


def browsable_api_auth() -> list[URLPattern]:
    """rest_framework.urls (the browsable API's sign-in and out), with the pages' sign-in form."""
    login = LoginView.as_view(template_name="rest_framework/login.html", authentication_form=LoginForm)
    return [path("login/", login, name="login"), path("logout/", LogoutView.as_view(), name="logout")]


def api_urlpatterns() -> list[URLPattern | URLResolver]:
    """Everything under /api/: tasks, notifications, token login, schema and docs."""
    router = JsonRouter()
    router.register("tasks", TaskViewSet, basename="task")
    router.register("suppressions", SuppressionViewSet, basename="suppression")
    router.register("series", SeriesViewSet, basename="series")
    return [
        path("notifications/", NotificationPollView.as_view(), name="api-notifications"),
        path("auth/token/", TokenLoginView.as_view(), name="api-token"),
        path("auth/", include((browsable_api_auth(), "rest_framework"))),
        path("schema/", EnglishSchemaView.as_view(), name="api-schema"),
        path("docs/", SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
        path("redoc/", OfflineRedocView.as_view(url_name="api-schema"), name="api-redoc"),
        path("", include(router.urls)),
        re_path(r"^(?P<rest>.*)$", not_found),
    ]
