"""Production settings from the environment: `manage.py check --deploy` is clean, bad values are refused."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
import redis
from django.db import connection

from tests.harness import ROOT


def production_env(**overrides: str) -> dict[str, str]:
    """Environment of a production web process (what docker-compose.yml sets), nothing inherited."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "reservemail.settings",
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "mail.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://mail.example.com",
        "DATABASE_URL": "postgres://reservemail:pw@postgres:5432/reservemail",
        "REDIS_URL": "redis://redis:6379/0",
        "EMAIL_URL": "smtp+tls://mailer:pw@smtp.example.com:587",
        "DEFAULT_FROM_EMAIL": "reservemail <noreply@mail.reservemail.kr>",
        "SITE_URL": "https://mail.example.com",
        "TIME_ZONE": "Asia/Seoul",
        "LOG_FORMAT": "json",
        "METRICS_TOKEN": secrets.token_urlsafe(32),
    }
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_with_production_environment_prints_no_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stderr
    # security.W021 (HSTS preload) is silenced on purpose while SECURE_HSTS_PRELOAD is off: see settings.
    assert result.stdout == "System check identified no issues (1 silenced).\n"
    assert result.stderr == ""


def test_check_deploy_with_hsts_preload_on_silences_nothing():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env(SECURE_HSTS_PRELOAD="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "System check identified no issues (0 silenced).\n"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set when DEBUG is off."),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be plain or json"),
        ({"REDIS_SENTINELS": "sentinel-a"}, "REDIS_SENTINELS: 'sentinel-a' is not host:port"),
    ],
)
def test_bad_production_environment_is_refused_with_a_clear_error(overrides, message):
    result = manage("check", env=production_env(**overrides))
    assert result.returncode != 0
    assert f"django.core.exceptions.ImproperlyConfigured: {message}" in result.stderr


@pytest.mark.parametrize("sender", ["reservemail <noreply@localhost>", "noreply@example.com", "a@mail.example.test"])
def test_production_start_and_check_deploy_refuse_a_sender_no_relay_accepts(sender):
    for args in (("check",), ("check", "--deploy")):
        result = manage(*args, env=production_env(DEFAULT_FROM_EMAIL=sender))
        assert result.returncode != 0, args
        assert "(tasks.E001) DEFAULT_FROM_EMAIL" in result.stderr, args


def test_check_deploy_refuses_the_development_sender_even_with_debug_on():
    env = production_env(DEBUG="1", DEFAULT_FROM_EMAIL="")
    del env["DEFAULT_FROM_EMAIL"]
    result = manage("check", "--deploy", env=env)
    assert result.returncode != 0
    assert "(tasks.E001) DEFAULT_FROM_EMAIL ('reservemail <noreply@localhost>') is at localhost" in result.stderr
    assert manage("check", env=env).returncode == 0  # development: only --deploy asks


def test_database_engine_follows_database_url():
    """The suite runs on whatever DATABASE_URL names: SQLite by default, PostgreSQL in CI's second run."""
    url = os.environ.get("DATABASE_URL", "sqlite://")
    expected = "postgresql" if url.startswith(("postgres://", "postgresql://")) else "sqlite"
    assert connection.vendor == expected


def test_cache_url_gives_every_process_one_redis_cache(redis_server):
    """Two processes with the same CACHE_URL see each other's entries (throttle counters are shared)."""
    url = f"redis://127.0.0.1:{redis_server.port}/1"
    env = production_env(CACHE_URL=url)
    write = "from django.core.cache import cache; cache.set('shared-by', 'first', 60)"
    read = "from django.core.cache import cache; print(cache.get('shared-by'))"
    try:
        assert manage("shell", "--verbosity", "0", "-c", write, env=env).returncode == 0
        result = manage("shell", "--verbosity", "0", "-c", read, env=env)
        assert result.stdout == "first\n", result.stderr
    finally:
        redis.Redis(host="127.0.0.1", port=redis_server.port, db=1).flushdb()
