"""The OpenAPI schema: valid, complete (every endpoint), with examples; the docs page is served."""

import re

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

# Every operation the API offers. A new endpoint must be added here and be in the schema.
OPERATIONS = {
    ("/api/auth/token/", "post"),
    ("/api/notifications/", "get"),
    ("/api/tasks/", "get"),
    ("/api/tasks/", "post"),
    ("/api/tasks/{id}/", "get"),
    ("/api/tasks/{id}/", "patch"),
    ("/api/tasks/{id}/cancel/", "post"),
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def schema():
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_schema_validates_against_openapi_3_without_warnings(tmp_path):
    # --validate checks the document against the OpenAPI 3 JSON schema; warnings fail the run.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert (tmp_path / "schema.yml").read_text().startswith("openapi: 3.0.3")


def test_schema_lists_every_endpoint_and_nothing_else(schema):
    found = {(path, method) for path, item in schema["paths"].items() for method in item if method in HTTP_METHODS}
    assert found == OPERATIONS


def test_every_endpoint_served_under_api_is_in_the_schema(schema):
    from django.urls import get_resolver
    from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
    from rest_framework.routers import APIRootView
    from rest_framework.views import APIView

    not_operations = (APIRootView, SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView)

    def walk(patterns, prefix=""):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                yield prefix + str(pattern.pattern), getattr(pattern.callback, "cls", None)

    served = {
        "/" + re.sub(r"\(\?P<pk>[^)]*\)", "{id}", route).replace("^", "").replace("$", "")
        for route, view in walk(get_resolver().url_patterns)
        if route.startswith("api/")
        and view is not None
        and issubclass(view, APIView)
        and not issubclass(view, not_operations)
        and "(?P<format>" not in route  # DRF's ".json" suffix variants of the same operations
    }
    assert served == {path for path, _ in OPERATIONS} == set(schema["paths"])


def test_create_reschedule_cancel_have_examples(schema):
    tasks, task, cancel = (schema["paths"][p] for p in ("/api/tasks/", "/api/tasks/{id}/", "/api/tasks/{id}/cancel/"))
    create_examples = tasks["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert set(create_examples) == {"SendNow", "Reserve"}
    assert create_examples["Reserve"]["value"]["scheduled_at"] == "2026-06-01T09:00:00+09:00"
    assert "examples" in tasks["post"]["responses"]["201"]["content"]["application/json"]
    assert set(task["patch"]["requestBody"]["content"]["application/json"]["examples"]) == {"Move"}
    assert "examples" in task["patch"]["responses"]["409"]["content"]["application/json"]
    assert set(cancel["post"]["responses"]) >= {"200", "401", "404", "409"}
    assert "examples" in cancel["post"]["responses"]["409"]["content"]["application/json"]
    headers = [p["name"] for p in tasks["post"]["parameters"] if p["in"] == "header"]
    assert headers == ["Idempotency-Key"]
    assert set(schema["components"]["securitySchemes"]) == {"cookieAuth", "tokenAuth", "bearerAuth"}


def test_docs_page_is_served_with_local_assets():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/api/schema/" in html
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert APIClient().get("/api/redoc/").status_code == 200


def test_redoc_page_uses_local_assets_and_forbids_other_hosts():
    response = APIClient().get("/api/redoc/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js" in html
    assert "/static/js/redoc_init.js" in html and finders.find("js/redoc_init.js")
    assert 'data-spec-url="/api/schema/"' in html
    assert "fonts.googleapis.com" not in html and "https://" not in html
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
