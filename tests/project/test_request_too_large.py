"""A body over DATA_UPLOAD_MAX_MEMORY_SIZE: 413 with the error body, from every operation whose schema says so."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from series.models import Series
from tasks.models import Task
from tests.tasks.test_api import client_for
from tests.test_api_schema import ERRORS, resolve

pytestmark = pytest.mark.django_db

LIMIT = 2048
SEND = {"template": "welcome", "recipients": ["a@example.com"], "context": {"name": "Ann"}, "description": "Hi"}
RULE = "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;COUNT=3"
TOO_LARGE = {"detail": "Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.", "code": "request_too_large"}
# The operations that read a body; the others (series end/pause/resume/skip) take none and never answer 413.
WITH_BODY = sorted(operation for operation, errors in ERRORS.items() if "413" in errors)


@pytest.fixture
def schema():
    return APIClient().get("/api/schema/?format=json").json()


def test_every_operation_with_a_body_documents_413_and_no_other_does(schema):
    assert {(path, method) for path, method in WITH_BODY} == {
        (path, method)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in {"post", "patch", "put"} and "requestBody" in operation
    } | {("/api/tasks/{id}/cancel/", "post")}  # its body is read (fingerprinted) with an Idempotency-Key
    for path, method in WITH_BODY:
        response = schema["paths"][path][method]["responses"]["413"]
        media = response["content"]["application/json"]
        assert sorted(resolve(schema, media["schema"])["required"]) == ["code", "detail"]
        assert [example["value"] for example in media["examples"].values()] == [TOO_LARGE]
        assert "DATA_UPLOAD_MAX_MEMORY_SIZE" in response["description"]


@pytest.fixture
def api(user):
    user.is_staff = True  # /api/suppressions/ is for staff
    user.save(update_fields=["is_staff"])
    return client_for(user)


@pytest.fixture
def ids(api, django_capture_on_commit_callbacks):
    """A reserved task and an active series of the user's, so the {id} operations reach their body."""
    due = timezone.now() + timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        task = api.post("/api/tasks/", {**SEND, "scheduled_at": due.isoformat()}, format="json")
        series = api.post("/api/series/", {**SEND, "rule": RULE}, format="json")
    assert (task.status_code, series.status_code) == (201, 201), (task.content, series.content)
    return {"/api/tasks/": task.json()["id"], "/api/series/": series.json()["id"]}


def url_of(path, ids):
    for prefix, pk in ids.items():
        path = path.replace(prefix + "{id}/", f"{prefix}{pk}/")
    return path


def rows():
    return list(Task.objects.values_list("pk", "status", "context")), list(Series.objects.values_list("pk", "status"))


@pytest.mark.parametrize(("path", "method"), WITH_BODY)
def test_an_oversized_body_is_413_with_the_error_body(api, ids, settings, path, method):
    before = rows()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    body = {**SEND, "context": {"name": "x" * LIMIT}}
    response = getattr(api, method)(url_of(path, ids), body, format="json", HTTP_IDEMPOTENCY_KEY="big-1")
    assert response.status_code == 413, (path, method, response.content)
    assert response.json() == TOO_LARGE
    assert rows() == before


def test_the_same_body_under_the_limit_is_read(api, ids, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = LIMIT
    response = api.patch(url_of("/api/tasks/{id}/", ids), {"description": "x" * 100}, format="json")
    assert response.status_code == 200, response.content
    assert Task.objects.get(pk=ids["/api/tasks/"]).description == "x" * 100
