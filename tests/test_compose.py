"""docker-compose.yml cannot run here (no Docker engine), so read it and check what it names."""

import re
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parent.parent
# Read by other programs than Django: the container's libc (TZ) and gunicorn (WEB_CONCURRENCY).
NOT_DJANGO_SETTINGS = {"TZ", "WEB_CONCURRENCY"}


def load():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def command_text(service):
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else str(command)


def healthcheck_text(service):
    test = service["healthcheck"]["test"]
    return " ".join(test[1:]) if isinstance(test, list) else str(test)


def test_compose_has_web_worker_redis_database_and_mail_catcher():
    services = load()["services"]
    assert {"web", "worker", "redis", "postgres", "mailcatcher"} <= set(services)


def test_compose_worker_runs_all_queues_with_scheduler():
    worker = command_text(load()["services"]["worker"])
    assert "manage.py rqworker" in worker
    assert set(worker.split()) >= {"default", "high", "low", "--with-scheduler"}


def test_compose_worker_scales_out_and_shuts_down_warm():
    worker = load()["services"]["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert worker["stop_signal"] == "SIGTERM"
    assert re.fullmatch(r"\d+m|\d+s", worker["stop_grace_period"])


def test_compose_redis_is_persistent_and_never_evicts():
    redis = command_text(load()["services"]["redis"])
    assert "--appendonly yes" in redis
    assert "--maxmemory-policy noeviction" in redis
    assert "redisdata:/data" in load()["services"]["redis"]["volumes"]


def test_compose_uses_seoul_time_zone_everywhere():
    for name, service in load()["services"].items():
        assert service.get("environment", {}).get("TZ") == "Asia/Seoul", name
    assert load()["services"]["web"]["environment"]["TIME_ZONE"] == "Asia/Seoul"


def test_compose_web_runs_project_wsgi_migrations_and_serves_static():
    web = command_text(load()["services"]["web"])
    assert "manage.py migrate --no-input" in web and "manage.py collectstatic --no-input" in web
    assert "exec gunicorn reservemail.wsgi:application" in web
    assert (ROOT / "reservemail" / "wsgi.py").exists()
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in settings.MIDDLEWARE
    requirements = (ROOT / "requirements.txt").read_text()
    assert re.search(r"^gunicorn==", requirements, re.M) and re.search(r"^whitenoise==", requirements, re.M)


def test_every_service_has_a_healthcheck_and_the_app_uses_the_health_command():
    services = load()["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("web", "worker"):
        assert "python manage.py health" in healthcheck_text(services[name]), name


@pytest.mark.parametrize("where", ["command", "healthcheck"])
def test_every_manage_py_command_named_in_compose_exists(where):
    commands = get_commands()
    for name, service in load()["services"].items():
        text = command_text(service) if where == "command" else healthcheck_text(service)
        for command in re.findall(r"manage\.py (\S+)", text):
            assert command in commands, f"{name}: manage.py {command} does not exist"


def test_compose_app_env_names_settings_the_project_reads():
    settings_text = (ROOT / "reservemail" / "settings.py").read_text()
    services = load()["services"]
    for service in ("web", "worker"):
        for name in services[service]["environment"]:
            if name not in NOT_DJANGO_SETTINGS:
                assert f'"{name}"' in settings_text, f"{name} is not read by settings.py"


def test_compose_app_waits_for_healthy_database_and_redis():
    services = load()["services"]
    for name in ("web", "worker"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == depends["redis"]["condition"] == "service_healthy", name
    assert services["worker"]["depends_on"]["web"]["condition"] == "service_healthy"  # migrations ran


def test_dockerfile_builds_the_pinned_requirements_on_python_311():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("FROM python:3.11")
    assert "pip install --no-cache-dir -r requirements.txt" in dockerfile
    assert "TZ=Asia/Seoul" in dockerfile


def test_compose_sender_must_be_set_explicitly_and_has_no_reserved_default():
    value = load()["services"]["worker"]["environment"]["DEFAULT_FROM_EMAIL"]
    required = re.fullmatch(r"\$\{DEFAULT_FROM_EMAIL:\?[^}]+\}", value)
    assert required, f"DEFAULT_FROM_EMAIL must be required (${{DEFAULT_FROM_EMAIL:?...}}), not {value!r}"
    assert "localhost" not in value


def test_compose_passes_the_relay_tls_settings_to_web_and_worker():
    for name in ("web", "worker"):
        environment = load()["services"][name]["environment"]
        for setting in ("EMAIL_USE_TLS", "EMAIL_USE_SSL", "EMAIL_SMTPUTF8"):
            assert environment[setting] == f"${{{setting}:-0}}", name
        for setting in ("EMAIL_SSL_CAFILE", "EMAIL_SSL_CERTFILE", "EMAIL_SSL_KEYFILE"):
            assert environment[setting] == f"${{{setting}:-}}", name
        assert environment["EMAIL_PIPELINING"] == "${EMAIL_PIPELINING:-1}", name
        assert 0 < float(environment["EMAIL_IDLE_SECONDS"].removeprefix("${EMAIL_IDLE_SECONDS:-").rstrip("}")) < 300
