"""docker-compose.yml cannot run here (no Docker engine), so read it and check what it names."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def load():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def command_text(service):
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def test_compose_has_web_worker_redis_and_database():
    services = load()["services"]
    assert {"web", "worker", "redis", "postgres"} <= set(services)


def test_compose_worker_runs_all_queues_with_scheduler():
    worker = command_text(load()["services"]["worker"])
    assert "manage.py rqworker" in worker
    assert set(worker.split()) >= {"default", "high", "low", "--with-scheduler"}


def test_compose_redis_is_persistent_and_never_evicts():
    redis = command_text(load()["services"]["redis"])
    assert "--appendonly yes" in redis
    assert "--maxmemory-policy noeviction" in redis


def test_compose_uses_seoul_time_zone_everywhere():
    for name, service in load()["services"].items():
        assert service.get("environment", {}).get("TZ") == "Asia/Seoul", name


def test_compose_web_runs_project_wsgi_and_migrations():
    web = command_text(load()["services"]["web"])
    assert "migrate" in web and "gunicorn reservemail.wsgi:application" in web
    assert (ROOT / "reservemail" / "wsgi.py").exists()


def test_compose_app_env_names_settings_the_project_reads():
    settings_text = (ROOT / "reservemail" / "settings.py").read_text()
    env = load()["services"]["web"]["environment"]
    for name in env:
        if name != "TZ":
            assert f'"{name}"' in settings_text, f"{name} is not read by settings.py"
