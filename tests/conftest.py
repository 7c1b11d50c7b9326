"""Shared fixtures: a real redis-server for the whole run, an SMTP sink, worker subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import django_rq
import pytest
from django.conf import settings
from django.db import connection
from django.utils import translation

from tests.harness import RedisServer, SmtpSink, start_registered_worker, stop_process, worker_env

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "test-output"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server on a free port for the run; the queues' settings point at it."""
    server = RedisServer().start()
    if server.client().dbsize():
        server.stop()
        raise RuntimeError("the test Redis database is not empty; refusing to run")
    for config in settings.RQ_QUEUES.values():
        config["URL"] = server.url
    settings.REDIS_URL = server.url
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def clean_redis(redis_server: RedisServer) -> Iterator[None]:
    redis_server.client().flushdb()
    yield
    redis_server.client().flushdb()


@pytest.fixture
def redis_conn(redis_server: RedisServer):  # noqa: ANN201
    return django_rq.get_connection("high")


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp(smtp_sink: SmtpSink, settings) -> Iterator[SmtpSink]:  # noqa: ANN001
    """The SMTP sink, emptied, with this process's mail going to it over SMTP."""
    smtp_sink.reset()
    settings.EMAIL_BACKEND = "tasks.relay.RelayBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_sink.port
    yield smtp_sink
    from tasks.smtp import session

    session.close()
    smtp_sink.reset()


def database_url() -> str:
    """A URL that points worker subprocesses at the test database this run created."""
    cfg = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{cfg['NAME']}"
    user = quote(cfg.get("USER") or "", safe="")
    password = f":{quote(cfg['PASSWORD'], safe='')}" if cfg.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{cfg.get('HOST') or '127.0.0.1'}:{cfg.get('PORT') or 5432}/{cfg['NAME']}"


@pytest.fixture
def worker_factory(redis_server: RedisServer, smtp: SmtpSink, tmp_path: Path) -> Iterator[Callable[..., object]]:
    """Start real ``rqworker --with-scheduler`` subprocesses; all are stopped by PID afterwards."""
    procs = []

    def start(name: str = "w1", extra_env: dict[str, str] | None = None):  # noqa: ANN202
        env = worker_env(redis_url=redis_server.url, database_url=database_url(), smtp_port=smtp.port, extra=extra_env)
        log_path = tmp_path / f"worker-{name}.log"
        proc = start_registered_worker(
            env, name=f"{name}-{tmp_path.name}", log_path=log_path, conn=redis_server.client(), timeout=30
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        stop_process(proc)


@pytest.fixture
def worker(worker_factory: Callable[..., object]):  # noqa: ANN201
    return worker_factory()


@pytest.fixture
def user(django_user_model):  # noqa: ANN001, ANN201
    return django_user_model.objects.create_user(username="alice", password="pw-alice-123", email="alice@example.com")


@pytest.fixture
def other_user(django_user_model):  # noqa: ANN001, ANN201
    return django_user_model.objects.create_user(username="bob", password="pw-bob-123")


@pytest.fixture
def fast_lead(settings):  # noqa: ANN001, ANN201
    """Allow reservations a couple of seconds ahead, so end-to-end tests run in real time."""
    settings.RESERVATION_MIN_LEAD = 1
    return settings


@pytest.fixture(autouse=True)
def default_language() -> Iterator[None]:
    """Every test starts in LANGUAGE_CODE: a request through the test client leaves its language
    active in this thread (LocaleMiddleware), and a Korean page would make the next test's messages Korean."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def clear_cache() -> Iterator[None]:
    """DRF throttles count in the default cache (LocMemCache): start every test from zero."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
