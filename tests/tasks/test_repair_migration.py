"""tasks.0010: JSON stored with lone surrogates or U+0000 (before the input checks) is repaired on SQLite."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from series.models import Series
from tasks.models import Delivery, Task

repair = importlib.import_module("tasks.migrations.0010_repair_unstorable_text").repair

BROKEN_RECIPIENTS = ["a@example.com", {"address": "b@example.com", "name": "B\ud800", "context": {"n": "x\udfff"}}]
BROKEN_CONTEXT = {"name": "Ann\x00", "k\udc80": ["\ud83d", {"deep": "ok \ud83d\ude00"}]}


@pytest.fixture
def sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL refuses these values when they are written: nothing to repair")


def test_lone_surrogates_and_nul_become_the_replacement_character(sqlite_only, client, user):
    task = Task.objects.create(
        owner=user, description="d", template="welcome", recipients=BROKEN_RECIPIENTS, context=BROKEN_CONTEXT
    )
    delivery = Delivery.objects.create(task=task, address="b@example.com", context={"n": "x\udfff"}, message_id="<m>")
    series = Series.objects.create(
        owner=user, description="s", template="welcome", recipients=BROKEN_RECIPIENTS, context=BROKEN_CONTEXT,
        rule="FREQ=DAILY", zone="Asia/Seoul", start_at=task.created_at,
    )  # fmt: skip
    clean = Task.objects.create(owner=user, description="c", template="welcome", recipients=["c@example.com"])
    before = Task.objects.filter(pk=clean.pk).values().get()
    client.force_login(user)
    with pytest.raises(UnicodeEncodeError):  # the defect: the owner's page cannot be written out
        client.get(f"/tasks/{task.pk}/")

    repair(apps, SimpleNamespace(connection=connection))

    fixed_recipients = ["a@example.com", {"address": "b@example.com", "name": "B\ufffd", "context": {"n": "x\ufffd"}}]
    fixed_context = {"name": "Ann\ufffd", "k\ufffd": ["\ufffd", {"deep": "ok \U0001f600"}]}  # a whole pair is kept
    task.refresh_from_db()
    series.refresh_from_db()
    assert (task.recipients, task.context) == (fixed_recipients, fixed_context)
    assert (series.recipients, series.context) == (fixed_recipients, fixed_context)
    assert Delivery.objects.get(pk=delivery.pk).context == {"n": "x\ufffd"}
    assert Task.objects.filter(pk=clean.pk).values().get() == before
    assert client.get(f"/tasks/{task.pk}/").status_code == 200
    assert client.get("/tasks/").status_code == 200
