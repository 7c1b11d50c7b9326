"""API authentication: the anonymous JSON-only token endpoint, `Token` and `Bearer` keys, their schema, and JSON
errors when Django answers itself (DEBUG off)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

CREDENTIALS = {"username": "alice", "password": "pw-alice-123"}  # the `user` fixture's


def token_of(user):
    return Token.objects.get_or_create(user=user)[0].key


# --- POST /api/auth/token/ -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stale", ["Token 0123456789abcdef0123456789abcdef01234567", "Bearer expired", "Token", "Basic x"]
)
def test_token_endpoint_ignores_a_stale_authorization_header(user, stale):
    response = APIClient().post("/api/auth/token/", CREDENTIALS, format="json", HTTP_AUTHORIZATION=stale)
    assert response.status_code == 200
    assert response.json() == {"token": token_of(user)}


def test_token_endpoint_with_the_current_token_in_the_header_gives_the_same_token(user):
    key = token_of(user)
    response = APIClient().post("/api/auth/token/", CREDENTIALS, format="json", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.json() == {"token": key}


def test_token_endpoint_wrong_credentials_are_field_errors(user):
    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Unable to log in with provided credentials."]}
    missing = APIClient().post("/api/auth/token/", {"username": "alice"}, format="json")
    assert missing.status_code == 400
    assert missing.json() == {"password": ["This field is required."]}


@pytest.mark.parametrize("fmt", ["multipart", None])
def test_token_endpoint_takes_json_only(user, fmt):
    client = APIClient()
    response = (
        client.post("/api/auth/token/", CREDENTIALS, format=fmt)
        if fmt
        else client.post(
            "/api/auth/token/", "username=alice&password=pw-alice-123", content_type="application/x-www-form-urlencoded"
        )
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert not Token.objects.exists()


def test_token_endpoint_deep_nested_username_is_400_not_500(user):
    body = '{"username": ' + "[" * 5000 + "]" * 5000 + ', "password": "x"}'
    response = Client().post("/api/auth/token/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


@pytest.mark.parametrize("body", ['{"username": ["alice"], "password": "pw-alice-123"}', "[1, 2]", '"alice"', "null"])
def test_token_endpoint_wrong_shapes_are_400(user, body):
    response = Client().post("/api/auth/token/", body, content_type="application/json")
    assert response.status_code == 400
    assert not Token.objects.exists()


# --- Token and Bearer keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["Token", "Bearer", "bearer", "token"])
@pytest.mark.parametrize("path", ["/api/tasks/", "/api/notifications/"])
def test_token_and_bearer_keywords_both_authenticate(user, keyword, path):
    response = APIClient().get(path, HTTP_AUTHORIZATION=f"{keyword} {token_of(user)}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Bearer not-a-token", "Invalid token."),
        ("Bearer", "Invalid token header. No credentials provided."),
        ("Bearer a b", "Invalid token header. Token string should not contain spaces."),
    ],
)
def test_bad_bearer_is_401(user, header, detail):
    response = APIClient().get("/api/tasks/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json() == {"detail": detail, "code": "authentication_failed"}
    assert response["WWW-Authenticate"] == "Token"


def test_other_schemes_are_not_ours(user):
    response = APIClient().get("/api/tasks/", HTTP_AUTHORIZATION=f"Basic {token_of(user)}")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# --- the schema --------------------------------------------------------------------------------------------------


@pytest.fixture
def schema():
    response = APIClient().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def test_schema_declares_token_and_http_bearer_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http"
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["tokenAuth"] == {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": 'Token-based authentication with required prefix "Token"',
    }
    assert "security" not in schema, "no global requirement that the token operation would inherit"
    for path, method in [("/api/tasks/", "get"), ("/api/tasks/{id}/cancel/", "post"), ("/api/notifications/", "get")]:
        assert schema["paths"][path][method]["security"] == [{"tokenAuth": []}, {"bearerAuth": []}, {"cookieAuth": []}]


def test_schema_token_operation_is_anonymous_with_one_json_body(schema):
    operation = schema["paths"]["/api/auth/token/"]["post"]
    assert operation.get("security", []) == []
    assert list(operation["requestBody"]["content"]) == ["application/json"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][body]["required"] == ["password", "username"]
    assert set(operation["responses"]) == {"200", "400", "413", "415", "429"}
    assert set(operation["responses"]["429"]["headers"]) == {"Retry-After"}


# --- JSON errors with DEBUG off ----------------------------------------------------------------------------------


def test_tests_run_with_debug_off():
    assert django_settings.DEBUG is False  # so what follows is what a DEBUG=0 deployment answers


@pytest.mark.urls("tests.api_error_urls")
@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("get", "/api/boom/", 500, {"detail": "Server error.", "code": "server_error"}),
        ("post", "/api/boom/", 500, {"detail": "Server error.", "code": "server_error"}),
        ("get", "/api/gone/", 404, {"detail": "Not found.", "code": "not_found"}),
        ("get", "/api/no/such/thing/", 404, {"detail": "Not found.", "code": "not_found"}),
    ],
)
def test_api_errors_django_answers_itself_are_json(method, path, status, body):
    client = Client(raise_request_exception=False)
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json() == body


def test_disallowed_host_under_api_is_json_400():
    response = Client().get("/api/tasks/", HTTP_HOST="attacker.example")
    assert response.status_code == 400
    assert response.json() == {"detail": "Bad request.", "code": "bad_request"}


@pytest.mark.urls("tests.api_error_urls")
def test_errors_outside_api_keep_djangos_pages():
    not_found = Client().get("/no/such/page/")
    assert not_found.status_code == 404
    assert not_found["Content-Type"].startswith("text/html")
