"""Every route with hostile headers, query strings, bodies, keys and methods, signed in or not: never a 500."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from django.test import Client

from tasks.models import Task
from tests.project.routes import all_routes

pytestmark = pytest.mark.django_db

# Sets of headers a client controls, sent together: non-ASCII values, malformed ones, each kind of credential.
HOSTILE = [
    {
        "Authorization": "Bearer \u00e9\u00e9",
        "Idempotency-Key": "\u00e9" * 300,
        "X-Forwarded-For": "\u00e9, ::1, 999.1.1.1",
        "Accept-Language": "\u00e9\u00e9;q=x, ko;q=2",
        "If-None-Match": '"\u00e9"',
        "If-Modified-Since": "\u00e9",
    },
    {"Authorization": "Token \u00e9", "Idempotency-Key": "", "X-Forwarded-For": ",,,", "Accept-Language": "*;q=-1"},
    {"Authorization": "Basic \u00e9\u00e9\u00e9"},
    {"Authorization": "Bearer  a b"},
    {"Authorization": "Bearer"},
    {"Cookie": "sessionid=\u00e9; csrftoken=\u00e9; django_language=\u00e9"},
]


def _concrete(route: str) -> str:
    """A path for ``route``: each parameter filled with a value of its kind (numbers 1, queue 0, text x)."""
    path = route.replace("^", "").replace("$", "").replace("\\Z", "").replace("/?", "/").replace("\\.", ".")
    path = re.sub(r"\(\?P<format>[^)]*\)", "json", path)
    path = re.sub(r"\(\?P<app_label>[^)]*\)", "tasks", path)
    path = re.sub(r"\(\?P<\w+>\.\*\)", "x", path)
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "{pk}", path)
    path = re.sub(r"<int:\w*index>", "0", path)
    path = re.sub(r"<(int:)?\w+>|<path:object_id>", "{pk}", path)
    path = re.sub(r"<(str|path|slug):\w+>", "x", path)
    return "/" + path


def _sweep(user, staff, send, key: str | None = None) -> list[tuple]:  # noqa: ANN001
    """Call ``send(client, path)`` for every route as anonymous, a user and a superuser; the answers over 499.

    Ids in paths are ``key``, or the id of a task of ``user``'s. A fresh sign-in per route: a request
    with a broken session cookie signs the client out.
    """
    if key is None:
        key = str(
            Task.objects.create(owner=user, template="welcome", recipients=[], description="x", status="finished").pk
        )
    paths = sorted({_concrete(route).format(pk=key) for route in all_routes() if "drf_format_suffix" not in route})
    assert len(paths) > 150  # the admin's, the API's, the pages'
    failures = []
    for who in (None, user, staff):
        client = Client(raise_request_exception=False)
        for path in paths:
            if who is not None:
                client.force_login(who)
            for what, response in send(client, path):
                if response.status_code >= 500 and not (path == "/healthz" and response.status_code == 503):
                    failures.append((who and who.username, path, what, response.status_code))
    return failures


@pytest.fixture(autouse=True)
def no_lockout(settings):  # noqa: ANN001, ANN201
    """Every failed sign-in is recorded (as django-axes does) but none locks: the sign-in forms see every body."""
    settings.AXES_FAILURE_LIMIT = 10**6


@pytest.fixture
def staff(django_user_model):  # noqa: ANN001, ANN201
    return django_user_model.objects.create_superuser(username="ops", password="pw-ops-123")


def test_hostile_headers_never_answer_500(settings, user, staff):
    """Headers a client controls, with non-ASCII, malformed and oversized values, on every route (ids of real rows)."""
    settings.METRICS_TOKEN = "t-monitor"

    def send(client, path):  # noqa: ANN001, ANN202
        for headers in HOSTILE:
            for method in ("get", "post"):
                yield (method, str(headers)[:60]), getattr(client, method)(path, headers=headers)

    failures = _sweep(user, staff, send)
    assert not failures, failures[:20]


QUERY_NAMES = ("since", "page", "p", "q", "o", "e", "ordering", "status", "next", "limit", "offset", "search", "format")
QUERY_VALUES = ("\x00", "\u00e9" * 500, "-1", "9" * 40, "1e309", "[]", "%", "nan")


def test_hostile_query_strings_never_answer_500(settings, user, staff):
    """The query parameters the pages, the admin's lists and the API read, with NUL, huge and malformed values."""
    settings.METRICS_TOKEN = "t-monitor"

    def send(client, path):  # noqa: ANN001, ANN202
        for value in QUERY_VALUES:
            yield repr(value[:20]), client.get(path, dict.fromkeys(QUERY_NAMES, value))

    failures = _sweep(user, staff, send)
    assert not failures, failures[:20]


BODY_NAMES = (
    *("address", "advanced", "all_bulk", "at_time", "code", "context", "count", "data", "description", "ends"),
    *("html", "kind", "list_name", "monthday", "name", "preview_recipient", "recipient", "recipients"),
    *("recipients_csv", "reserve", "rule", "scheduled_at", "since", "start_at", "status", "subject", "template"),
    *("text", "time_zone", "timestamp", "until", "username", "weekdays", "zone", "language", "next", "action"),
    *("index", "select_across", "_selected_action", "task_ids", "ids", "password", "email"),
)
FORM, JSON = "application/x-www-form-urlencoded", "application/json"
BODY_VALUES = ("\x00", "\u00e9" * 3000, "-1", "9" * 40, "[]", "{", "nan", "\ud800")


def test_hostile_bodies_never_answer_500(settings, user, staff):
    """Every route's POST with each form and API field name given NUL, huge, malformed or unpaired-surrogate values."""
    settings.METRICS_TOKEN = "t-monitor"

    def send(client, path):  # noqa: ANN001, ANN202
        for value in BODY_VALUES:
            data = dict.fromkeys(BODY_NAMES, value)
            form = urlencode({name: value.encode("utf-8", "surrogatepass") for name, value in data.items()})
            yield ("form", repr(value[:20])), client.post(path, form, content_type=FORM)
            body = _json(data)
            yield ("json", repr(value[:20])), client.post(path, body, content_type=JSON)
            html = {"Accept": "text/html"}  # the browsable API's page for the same answer
            yield ("json->html", repr(value[:20])), client.post(path, body, content_type=JSON, headers=html)

    failures = _sweep(user, staff, send)
    assert not failures, failures[:20]


def _json(data: dict) -> bytes:
    """The body as JSON text; an unpaired surrogate goes out as its escape, as a client's JSON encoder writes it."""
    return json.dumps(data).encode()


@pytest.mark.parametrize("key", ["9" * 40, "0", "-1", "%C3%A9", "x" * 300])
def test_keys_that_name_nothing_never_answer_500(settings, user, staff, key):
    """Every route with a key no row can have in its path (too big for the column, negative, text): 404 or a refusal."""
    settings.METRICS_TOKEN = "t-monitor"

    def send(client, path):  # noqa: ANN001, ANN202
        for method in ("get", "post"):
            yield method, getattr(client, method)(path)

    failures = _sweep(user, staff, send, key=key)
    assert not failures, failures[:20]


def test_every_method_never_answers_500(settings, user, staff):
    """PUT, PATCH, DELETE, OPTIONS, HEAD and TRACE on every route, with a JSON object and with text that is no JSON."""
    settings.METRICS_TOKEN = "t-monitor"

    def send(client, path):  # noqa: ANN001, ANN202
        for method in ("PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE"):
            for body in ('{"status": "canceled", "reserved_at": "2099-01-01T00:00:00Z"}', "\u00e9"):
                yield (method, body[:10]), client.generic(method, path, body, content_type=JSON)

    failures = _sweep(user, staff, send)
    assert not failures, failures[:20]
