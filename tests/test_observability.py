"""Structured logs (LOG_FORMAT=json) and the django-rq statistics in the admin."""

from __future__ import annotations

import json
import logging
import re

import pytest

from reservemail.logformat import JsonFormatter
from tasks import services
from tasks.mail import MailSpec

MAIL = MailSpec(template="welcome", recipients=("l@example.com",), context={"name": "Log"})


def _record(msg, *args, **extra):
    record = logging.LogRecord("tasks.transitions", logging.INFO, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_json_formatter_writes_extra_fields_as_keys():
    record = _record("task finished task_id=%s", 7, task_id=7, owner=3, queue="high", transition="running->finished")
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "task finished task_id=7"
    assert (entry["level"], entry["logger"]) == ("INFO", "tasks.transitions")
    assert entry["task_id"] == 7 and entry["owner"] == 3
    assert (entry["queue"], entry["transition"]) == ("high", "running->finished")
    assert entry["time"].endswith("+00:00")


def test_json_formatter_reads_key_value_pairs_from_plain_messages():
    entry = json.loads(JsonFormatter().format(_record("scheduled task_id=%s job_id=%s due=x", 12, "12")))
    assert entry["task_id"] == 12 and entry["job_id"] == "12"
    assert "owner" not in entry and "transition" not in entry


def test_json_formatter_keeps_the_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exc_info"]


@pytest.mark.django_db
def test_service_logs_carry_task_owner_queue_and_transition(user, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="tasks")
    with django_capture_on_commit_callbacks(execute=True):
        task = services.enqueue_task(owner=user, mail=MAIL, description="logged")
    services.cancel_task(owner=user, task_id=task.pk)
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if getattr(r, "transition", None)]
    assert [(e["task_id"], e["owner"], e["queue"], e["transition"]) for e in lines] == [
        (task.pk, user.pk, "default", "new->queued"),
        (task.pk, user.pk, "default", "queued->canceled"),
    ]


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password="pw-root-123", email="r@example.com")


@pytest.mark.django_db
def test_admin_index_links_to_the_rq_statistics(client, superuser):
    client.force_login(superuser)
    index = client.get("/admin/").content.decode()
    assert 'href="/admin/django_rq/dashboard/"' in index
    for url in ("/admin/django_rq/dashboard/", "/admin/django-rq/"):
        stats = client.get(url)
        assert stats.status_code == 200
        names = re.findall(r'queues/\d+/details/">\s*(\w+)\s*</a>', stats.content.decode())
        assert sorted(names) == ["default", "high", "low"]


@pytest.mark.django_db
def test_rq_stats_json_answers_the_metrics_token(client, settings, user, django_capture_on_commit_callbacks):
    settings.RQ_API_TOKEN = "s3cret-metrics-token"
    with django_capture_on_commit_callbacks(execute=True):
        services.enqueue_task(owner=user, mail=MAIL, description="counted")
    assert client.get("/admin/django-rq/stats.json").status_code == 401
    body = client.get("/admin/django-rq/stats.json", headers={"Authorization": "Bearer s3cret-metrics-token"}).json()
    jobs = {queue["name"]: queue["jobs"] for queue in body["queues"]}
    assert jobs == {"default": 1, "high": 0, "low": 0}
