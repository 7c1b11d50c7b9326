"""Rows stored before the input limits (a context far too deep, too big, not an object) still show on every page."""

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tasks import services
from tasks.display import preview_json, read_stored, shallow, text_depth
from tasks.exceptions import ReservationError
from tasks.models import Task
from tests.tasks.input_cases import deep_json

pytestmark = pytest.mark.django_db

ODD_CONTEXTS = {
    "deep-990": deep_json(990),  # what the API accepted before: the json module cannot read it back in a view
    "deep-array": "[" * 900 + "]" * 900,
    "big": '{"message": "' + "x" * 300_000 + '"}',
    "not-an-object": '["a", 1, null]',
    "markup": '{"name": "<script>alert(1)</script> & Tom"}',
}


def stored(owner, context_text, status="finished"):
    """A task whose context column holds ``context_text`` as written, bypassing the model and validation."""
    now = timezone.now()
    task = Task.objects.create(
        owner=owner,
        description="old row",
        template="welcome",
        recipients=["a@example.com", {"address": "b@example.com", "name": "Bob, Jr."}],
        context={},
        status=status,
        started_at=now,
        ended_at=now,
    )
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Task._meta.db_table} SET context = %s{cast} WHERE id = %s", [context_text, task.pk])  # noqa: S608
    return task


@pytest.mark.parametrize("text", ODD_CONTEXTS.values(), ids=ODD_CONTEXTS.keys())
def test_history_detail_and_admin_show_an_odd_stored_context(client, admin_client, user, text):
    task = stored(user, text)
    client.force_login(user)
    history = client.get("/tasks/")
    assert history.status_code == 200
    assert f"#{task.pk}" in history.content.decode()
    detail = client.get(f"/tasks/{task.pk}/")
    assert detail.status_code == 200
    page = detail.content.decode()
    assert "&quot;Bob, Jr.&quot; &lt;b@example.com&gt;" in page
    assert "<script>alert(1)</script>" not in page
    assert admin_client.get("/admin/tasks/task/").status_code == 200
    change = admin_client.get(f"/admin/tasks/task/{task.pk}/change/")
    assert change.status_code == 200
    assert "<script>alert(1)</script>" not in change.content.decode()


def test_the_deep_row_is_a_real_trap(user):
    """Without the pages' care, reading the row back is a RecursionError (the 500 the issue saw)."""
    task = stored(user, deep_json(990))
    with pytest.raises(RecursionError):
        Task.objects.get(pk=task.pk)


def test_preview_is_bounded_and_pretty_when_it_can_be():
    assert preview_json('{"a": {"b": 1}}') == '{\n  "a": {\n    "b": 1\n  }\n}'
    deep = preview_json(deep_json(5000))
    assert deep.startswith('{"a":{"a":') and deep.endswith("characters)") and len(deep) < 2100
    assert len(preview_json('"' + "x" * 100_000 + '"')) < 2100
    assert preview_json("") == "" and preview_json(None) == ""
    assert text_depth('{"a": "[[[{{{", "b": [1, [2]]}') == 3


def test_the_depth_limit_holds_with_and_without_the_bracket_count():
    wide = json.dumps({"items": [{"n": i} for i in range(50)]})  # 52 brackets, 3 deep: scanned, decoded
    assert shallow(wide) and read_stored(wide) == json.loads(wide)
    assert shallow(deep_json(16)) and not shallow(deep_json(17))  # few brackets, at and over the limit
    assert read_stored(deep_json(17)) is None and read_stored(deep_json(16)) is not None
    assert shallow('{"a": "' + "[" * 40 + '"}') is True  # brackets inside a string do not nest


@pytest.mark.parametrize("text", ODD_CONTEXTS.values(), ids=ODD_CONTEXTS.keys())
def test_the_api_lists_and_shows_an_odd_stored_context(user, text):
    from tests.tasks.test_api import client_for

    task = stored(user, text)
    api = client_for(user)
    listed = api.get("/api/tasks/")
    assert listed.status_code == 200
    shown = api.get(f"/api/tasks/{task.pk}/")
    assert shown.status_code == 200
    body = shown.json()
    assert body["recipients"] == ["a@example.com", '"Bob, Jr." <b@example.com>']
    if text.startswith(('{"a":{', "[[[")):
        assert body["context"] is None  # too deep to decode safely
    else:
        assert body["context"] == json.loads(text)


@pytest.mark.parametrize("text", ODD_CONTEXTS.values(), ids=ODD_CONTEXTS.keys())
def test_the_csv_export_writes_an_odd_stored_context(user, text):
    import csv
    import io

    from tasks.export import write_tasks_csv

    stored(user, text)
    out = io.StringIO()
    assert write_tasks_csv(owner=user, out=out) == 1
    limit = csv.field_size_limit(1_000_000)  # the reader's default is 128 KB; the "big" row is 300 KB
    try:
        [header, row] = list(csv.reader(io.StringIO(out.getvalue())))
    finally:
        csv.field_size_limit(limit)
    shown = row[header.index("context")]
    if text_depth(text) > 16:  # written as stored (PostgreSQL's jsonb stores it with its own spacing)
        assert "".join(shown.split()) == "".join(text.split())
    else:
        assert shown == json.dumps(json.loads(text), ensure_ascii=False)


UNREADABLE = {"deep-990": ODD_CONTEXTS["deep-990"], "not-an-object": ODD_CONTEXTS["not-an-object"]}


def reserved(owner, context_text):
    """A reservation two hours ahead whose context column holds ``context_text`` as written."""
    task = stored(owner, context_text)
    due = timezone.now() + timedelta(hours=2)
    Task.objects.filter(pk=task.pk).update(status="reserved", reserved_at=due, started_at=None, ended_at=None)
    return task


@pytest.mark.parametrize("text", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_an_unreadable_reservation_can_still_be_moved_and_canceled(user, text):
    """The doors that need no context (reschedule, cancel, the API's answer) work; none trips over the row."""
    from tests.tasks.test_api import client_for

    task = reserved(user, text)
    api = client_for(user)
    later = timezone.now() + timedelta(hours=3)
    moved = services.reschedule_task(owner=user, task_id=task.pk, scheduled_at=later)
    assert moved.reserved_at == later
    answer = api.post(f"/api/tasks/{task.pk}/cancel/")
    assert answer.status_code == 200, answer.content
    assert answer.json()["status"] == "canceled"
    assert Task.objects.filter(pk=task.pk).values_list("status", flat=True).get() == "canceled"


@pytest.mark.parametrize("text", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_editing_an_unreadable_reservation_asks_for_a_new_context(client, user, text):
    """The edit page says why it cannot type the row back; the API takes a time, or content with a new context."""
    from tests.tasks.test_api import client_for

    task = reserved(user, text)
    client.force_login(user)
    page = client.get(f"/tasks/{task.pk}/edit/", follow=True)
    assert page.redirect_chain == [(f"/tasks/{task.pk}/", 302)]
    assert f"The stored context of mail #{task.pk} cannot be read" in page.content.decode()
    api = client_for(user)
    later = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    assert api.patch(f"/api/tasks/{task.pk}/", {"scheduled_at": later.isoformat()}, format="json").status_code == 200
    refused = api.patch(f"/api/tasks/{task.pk}/", {"recipients": ["c@example.com"]}, format="json")
    assert refused.status_code == 400
    assert "cannot be read" in json.dumps(refused.json()), refused.json()
    assert Task.objects.filter(pk=task.pk).values_list("recipients", flat=True).get()[0] == "a@example.com"
    fixed = api.patch(f"/api/tasks/{task.pk}/", {"context": {"name": "New"}}, format="json")
    assert fixed.status_code == 200, fixed.content
    assert Task.objects.get(pk=task.pk).context == {"name": "New"}
    with pytest.raises(ReservationError, match="cannot be read"):
        services.retry_task(owner=user, task_id=stored(user, text).pk)
