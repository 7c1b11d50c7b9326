"""The project's URLs plus two plain Django views under /api/ that fail, for tests/test_api_auth.py."""

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import path

from reservemail.urls import handler400, handler403, handler404, handler500  # noqa: F401 - Django reads them here
from reservemail.urls import urlpatterns as project_urlpatterns


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug, not the client's fault")


def gone(request: HttpRequest) -> HttpResponse:
    raise Http404("no such thing")


urlpatterns = [path("api/boom/", boom), path("api/gone/", gone), *project_urlpatterns]
