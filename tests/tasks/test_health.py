"""Health: the report, manage.py health, /healthz, the admin banner, the eviction warning."""

import json
import logging
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tasks import health, scheduler
from tasks.models import Task
from tests.harness import RedisServer, free_port, wait_until

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_health_cache():
    health._cache.update(at=0.0, report=None)
    yield
    health._cache.update(at=0.0, report=None)


def overdue_task(user, seconds):
    return Task.objects.create(
        owner=user,
        status="reserved",
        description="late",
        template="welcome",
        recipients=["a@example.com"],
        reserved_at=timezone.now() - timedelta(seconds=seconds),
    )


def test_health_report_without_workers_names_every_problem(user, settings):
    settings.OVERDUE_GRACE_SECONDS = 30
    overdue_task(user, 95)
    overdue_task(user, 10)  # within the grace: not overdue
    report = health.health_report()
    assert report["ok"] is False
    assert report["database"] == {"ok": True}
    assert report["redis"] == {"ok": True, "maxmemory_policy": "noeviction", "evicts_keys": False}
    assert report["workers"] == {"high": 0, "default": 0, "low": 0}
    assert report["scheduler_running"] is False
    assert report["overdue"]["count"] == 1 and 94 <= report["overdue"]["oldest_seconds"] <= 100
    assert "no live worker on queue high" in report["problems"]
    assert "scheduler not running" in report["problems"]
    assert any(p.startswith("1 reservation(s) overdue by more than 30 s") for p in report["problems"])


def test_health_report_with_redis_down_answers_fast(settings, monkeypatch):
    for config in settings.RQ_QUEUES.values():
        monkeypatch.setitem(config, "URL", f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    report = health.health_report()
    assert time.monotonic() - started < settings.REDIS_SOCKET_TIMEOUT + 1
    assert report["redis"] == {"ok": False, "error": "RedisError: no answer within 1.0 s"}
    assert report["problems"][0] == "Redis unavailable"


def test_health_report_with_redis_frozen_takes_at_most_the_probe_timeout(settings, monkeypatch):
    server = RedisServer().start()
    try:
        for config in settings.RQ_QUEUES.values():
            monkeypatch.setitem(config, "URL", server.url)
        server.pause()
        started = time.monotonic()
        report = health.health_report()
        took = time.monotonic() - started
    finally:
        server.resume()
        server.stop()
    assert report["redis"]["ok"] is False
    assert took < health.PROBE_TIMEOUT + 1


def test_healthz_is_503_json_when_something_is_wrong(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    response = client.get("/healthz", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert response.status_code == 503
    body = response.json()
    assert set(body) >= {"ok", "database", "redis", "workers", "scheduler", "scheduler_running", "overdue"}
    assert body["ok"] is False


@pytest.mark.django_db
def test_healthz_tells_anyone_else_only_whether_all_is_well(client, settings, user, django_user_model):
    """The details (hosts, workers, errors, the relay's answer) are for staff and the METRICS_TOKEN bearer."""
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = client.get("/healthz", headers=headers)
        assert response.status_code == 503 and set(response.json()) == {"ok", "time"}
    client.force_login(user)  # signed in, not staff
    assert set(client.get("/healthz").json()) == {"ok", "time"}
    staff = django_user_model.objects.create_user(username="ops", password="pw-ops-123", is_staff=True)
    client.force_login(staff)
    assert "problems" in client.get("/healthz").json()


@pytest.mark.e2e
def test_healthz_is_200_with_a_live_worker_and_scheduler(client, transactional_db, worker, settings):
    wait_until(lambda: health.health_report()["ok"], timeout=30, what="worker and scheduler to be live")
    assert client.get("/healthz").json()["ok"] is True  # anyone: the status alone
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    response = client.get("/healthz", headers={"Authorization": "Bearer s3cret-metrics-token"})
    assert response.status_code == 200, response.json()["problems"]
    body = response.json()
    assert body["workers"] == {"high": 1, "default": 1, "low": 1}
    assert all(s["alive"] for s in body["scheduler"].values())


def test_health_command_prints_json_and_fails(user, capsys):
    with pytest.raises(SystemExit) as exit_info:
        call_command("health")
    assert exit_info.value.code == 1
    assert json.loads(capsys.readouterr().out)["ok"] is False


def test_admin_shows_banner_to_staff_when_scheduler_is_down(admin_client):
    response = admin_client.get("/admin/")
    text = response.content.decode()
    assert response.status_code == 200
    assert 'id="health-banner"' in text and "scheduler not running" in text


def test_admin_login_page_shows_no_banner(client):
    assert 'id="health-banner"' not in client.get("/admin/login/").content.decode()


def test_worker_warns_when_redis_may_evict_keys(redis_server, caplog):
    conn = redis_server.client()
    conn.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with caplog.at_level(logging.WARNING, logger="tasks.scheduler"):
            assert scheduler.warn_if_evicting() is True
        assert "maxmemory-policy is 'allkeys-lru'" in caplog.text
        assert health.health_report()["redis"]["evicts_keys"] is True
    finally:
        conn.config_set("maxmemory-policy", "noeviction")
    assert scheduler.warn_if_evicting() is False
