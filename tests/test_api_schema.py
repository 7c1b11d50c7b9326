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
    ("/api/series/", "get"),
    ("/api/series/", "post"),
    ("/api/series/{id}/", "get"),
    ("/api/series/{id}/", "patch"),
    ("/api/series/{id}/end/", "post"),
    ("/api/series/{id}/pause/", "post"),
    ("/api/series/{id}/resume/", "post"),
    ("/api/series/{id}/skip/", "post"),
    ("/api/suppressions/", "get"),
    ("/api/suppressions/", "post"),
    ("/api/suppressions/{id}/", "get"),
    ("/api/tasks/", "get"),
    ("/api/tasks/", "post"),
    ("/api/tasks/{id}/", "get"),
    ("/api/tasks/{id}/", "patch"),
    ("/api/tasks/{id}/cancel/", "post"),
    ("/api/tasks/preview/", "post"),
    ("/api/tasks/test/", "post"),
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
    assert set(task["patch"]["requestBody"]["content"]["application/json"]["examples"]) == {"Move", "FixTheContent"}
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
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    # Swagger UI's start-up script comes from a URL (the pages' policy runs no inline script) and names the schema.
    assert re.findall(r"<script>", html) == []
    script = APIClient().get("/api/docs/?script=")
    assert script.status_code == 200 and "/api/schema/" in script.content.decode()
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


# What each operation can answer besides its success, and the headers it sets (issue 14).
ERRORS = {
    ("/api/auth/token/", "post"): {"400", "413", "415", "429"},
    ("/api/notifications/", "get"): {"400", "401"},
    ("/api/series/", "get"): {"400", "401", "404"},
    ("/api/series/", "post"): {"400", "401", "403", "413", "415", "429"},
    ("/api/series/{id}/", "get"): {"401", "404"},
    ("/api/series/{id}/", "patch"): {"400", "401", "403", "404", "409", "413", "415"},
    ("/api/series/{id}/end/", "post"): {"401", "403", "404", "409"},
    ("/api/series/{id}/pause/", "post"): {"401", "403", "404", "409"},
    ("/api/series/{id}/resume/", "post"): {"401", "403", "404", "409"},
    ("/api/series/{id}/skip/", "post"): {"401", "403", "404", "409"},
    ("/api/suppressions/", "get"): {"401", "403", "404"},
    ("/api/suppressions/", "post"): {"400", "401", "403", "413", "415"},
    ("/api/suppressions/{id}/", "get"): {"401", "403", "404"},
    ("/api/tasks/", "get"): {"400", "401", "404"},
    ("/api/tasks/", "post"): {"400", "401", "403", "413", "415", "422", "429", "503"},
    ("/api/tasks/{id}/", "get"): {"401", "404"},
    ("/api/tasks/{id}/", "patch"): {"400", "401", "403", "404", "409", "413", "415"},
    ("/api/tasks/{id}/cancel/", "post"): {"400", "401", "403", "404", "409", "413", "415", "422"},
    ("/api/tasks/preview/", "post"): {"400", "401", "403", "413", "415"},
    ("/api/tasks/test/", "post"): {"400", "401", "403", "413", "415", "422", "429", "503"},
}
SUCCESS_HEADERS = {
    ("/api/notifications/", "get"): {"X-Server-Time"},
    ("/api/tasks/", "post"): {"Idempotent-Replayed"},
    ("/api/tasks/{id}/cancel/", "post"): {"Idempotent-Replayed"},
    ("/api/tasks/test/", "post"): {"Idempotent-Replayed"},
}


def resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def test_every_operation_documents_its_errors_with_bodies_and_headers(schema):
    assert set(ERRORS) == OPERATIONS
    for (path, method), errors in ERRORS.items():
        responses = schema["paths"][path][method]["responses"]
        success = {code for code in responses if code.startswith("2")}
        assert set(responses) - success == errors, (path, method)
        for code in errors:
            body = resolve(schema, responses[code]["content"]["application/json"]["schema"])
            assert {"detail", "code"} <= set(body["properties"]), (path, method, code)
            assert responses[code]["description"], (path, method, code)
        for code, response in responses.items():
            headers = set(response.get("headers", {}))
            expected = set()
            if code == "401":
                expected = {"WWW-Authenticate"}
            elif code in ("429", "503"):
                expected = {"Retry-After"}
            elif code in success:
                expected = SUCCESS_HEADERS.get((path, method), set())
            assert headers == expected, (path, method, code)
        if "403" in errors:
            assert "CSRF" in responses["403"]["description"]


def test_patch_body_requires_what_the_server_requires(schema, user):
    body = schema["paths"]["/api/tasks/{id}/"]["patch"]["requestBody"]
    assert body["required"] is True
    component = resolve(schema, body["content"]["application/json"]["schema"])
    # Every field optional, at least one, nothing else; the fields are the create body's.
    assert "required" not in component
    assert (component["minProperties"], component["additionalProperties"]) == (1, False)
    create_body = schema["paths"]["/api/tasks/"]["post"]["requestBody"]["content"]["application/json"]
    create = resolve(schema, create_body["schema"])
    assert set(component["properties"]) == set(create["properties"])
    assert component["properties"]["recipients"] == create["properties"]["recipients"]
    assert component["properties"]["scheduled_at"].get("nullable") is None
    assert not any(name.startswith("Patched") for name in schema["components"]["schemas"])

    from tasks.models import Task

    task = Task.objects.create(owner=user, template="welcome", recipients=["a@example.com"], description="x")
    client = APIClient()
    client.force_authenticate(user)
    response = client.patch(f"/api/tasks/{task.pk}/", {}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["non_field_errors"]


def openapi_to_json_schema(node):
    """OpenAPI 3.0 schema objects as JSON Schema: ``nullable: true`` becomes "or null"."""
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: openapi_to_json_schema(value) for key, value in node.items() if key != "nullable"}
    if "$ref" in out:
        out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/$defs/")
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def examples_of(schema):
    """(where, example value, media-type schema) for every example in the document."""
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            bodies = [("request", operation.get("requestBody", {}))]
            bodies += [(f"response {code}", response) for code, response in operation["responses"].items()]
            for where, body in bodies:
                for media in body.get("content", {}).values():
                    for name, example in media.get("examples", {}).items():
                        yield f"{method} {path} {where} {name}", example["value"], media["schema"]


def test_every_example_validates_against_its_own_schema(schema):
    from jsonschema import Draft202012Validator, FormatChecker

    definitions = openapi_to_json_schema(schema["components"]["schemas"])
    found = list(examples_of(schema))
    assert len(found) >= 20
    failures = []
    for where, value, media_schema in found:
        validator = Draft202012Validator(
            {**openapi_to_json_schema(media_schema), "$defs": definitions}, format_checker=FormatChecker()
        )
        failures += [f"{where}: {error.message}" for error in validator.iter_errors(value)]
    assert failures == []


def test_an_example_that_does_not_fit_its_schema_is_caught(schema):
    from jsonschema import Draft202012Validator

    definitions = openapi_to_json_schema(schema["components"]["schemas"])
    media = schema["paths"]["/api/notifications/"]["get"]["responses"]["200"]["content"]["application/json"]
    validator = Draft202012Validator({**openapi_to_json_schema(media["schema"]), "$defs": definitions})
    (example,) = media["examples"].values()
    assert validator.is_valid(example["value"])
    assert not validator.is_valid([example["value"]])  # the list inside a list the schema once had


HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("/api/schema/?format=json", {}),
        ("/api/schema/", {}),
        ("/api/schema/?format=json", {"HTTP_ACCEPT_LANGUAGE": "ko-KR,ko;q=0.9"}),
        ("/api/schema/?format=json&lang=ko", {}),
    ],
)
def test_schema_is_english_under_the_korean_default(settings, url, headers):
    settings.LANGUAGE_CODE = "ko"
    response = APIClient().get(url, **headers)
    assert response.status_code == 200
    text = response.content.decode()
    assert HANGUL.findall(text) == []
    assert "A unique integer value identifying this task." in text
    assert "Only tasks in it." in text


def test_a_refused_recipient_is_documented_keyed_by_its_position(schema):
    for path in ("/api/tasks/", "/api/tasks/preview/", "/api/tasks/test/", "/api/series/"):
        media = schema["paths"][path]["post"]["responses"]["400"]["content"]["application/json"]
        assert media["examples"]["InvalidRecipient"]["value"] == {
            "recipients": {"2": ["“a@b” is not a valid e-mail address."]}
        }
        body = resolve(schema, media["schema"])
        assert "keyed by its index" in body["description"]
        assert {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}} in body[
            "additionalProperties"
        ]["anyOf"]
