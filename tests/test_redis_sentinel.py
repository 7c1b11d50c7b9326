"""Redis Sentinel: the settings mapping, and a real redis-server in sentinel mode in front of the test Redis."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from rq.registry import ScheduledJobRegistry

from reservemail.redisconf import SentinelMasterConnection, parse_sentinels, rq_connection
from tasks import scheduler, services
from tasks.mail import MailSpec
from tasks.models import Task
from tests.harness import ROOT, free_port, redis_server_binary, stop_process, wait_until

MASTER = "mymaster"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", []),
        ("10.0.0.1:26379", [("10.0.0.1", 26379)]),
        (" s1:26379 , s2:26380,", [("s1", 26379), ("s2", 26380)]),
        ("[::1]:26379", [("::1", 26379)]),
    ],
)
def test_parse_sentinels_reads_host_port_lists(value, expected):
    assert parse_sentinels(value) == expected


@pytest.mark.parametrize("value", ["s1", "s1:", ":26379", "s1:port", "s1:70000", "s1:0"])
def test_parse_sentinels_rejects_bad_entries(value):
    with pytest.raises(ImproperlyConfigured, match="REDIS_SENTINELS"):
        parse_sentinels(value)


def test_rq_connection_without_sentinels_is_the_url():
    config = rq_connection(
        redis_url="redis://r:6379/2", sentinels="", master_name=MASTER, sentinel_password="", socket_timeout=3
    )
    assert config == {"URL": "redis://r:6379/2"}


def test_rq_connection_with_sentinels_takes_db_and_credentials_from_url():
    config = rq_connection(
        redis_url="redis://app:p%40ss@ignored:1/3",
        sentinels="s1:26379,s2:26379",
        master_name="main",
        sentinel_password="sp",
        socket_timeout=2.5,
    )
    assert config == {
        "SENTINELS": [("s1", 26379), ("s2", 26379)],
        "MASTER_NAME": "main",
        "DB": 3,
        "USERNAME": "app",
        "PASSWORD": "p@ss",
        "SOCKET_TIMEOUT": 2.5,
        "CONNECTION_KWARGS": {
            "socket_connect_timeout": 2.5,
            "health_check_interval": 30,
            "connection_class": SentinelMasterConnection,
        },
        "SENTINEL_KWARGS": {"socket_timeout": 2.5, "socket_connect_timeout": 2.5, "password": "sp"},
    }


def test_rq_connection_requires_master_name_with_sentinels():
    with pytest.raises(ImproperlyConfigured, match="REDIS_SENTINEL_MASTER"):
        rq_connection(redis_url="redis://x/0", sentinels="s1:1", master_name="", sentinel_password="", socket_timeout=1)


def test_settings_map_sentinel_environment_into_every_queue():
    """settings.py (not the test settings) reads the variables into each RQ_QUEUES entry."""
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "reservemail.settings",
        "REDIS_URL": "redis://:pw@unused:6379/4",
        "REDIS_SENTINELS": "sentinel-a:26379,sentinel-b:26379",
        "REDIS_SENTINEL_MASTER": "reservemail",
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings;"
        "print(json.dumps(settings.RQ_QUEUES, default=repr))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    queues = json.loads(out.stdout)
    assert set(queues) == {"high", "default", "low"}
    for config in queues.values():
        assert "URL" not in config
        assert config["SENTINELS"] == [["sentinel-a", 26379], ["sentinel-b", 26379]]
        assert (config["MASTER_NAME"], config["DB"], config["PASSWORD"]) == ("reservemail", 4, "pw")


class SentinelServer:
    """``redis-server --sentinel`` on a free loopback port, monitoring one master."""

    def __init__(self, master_port: int) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="rm-sentinel-"))
        conf = self.directory / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n"
        )
        self.proc = subprocess.Popen(  # noqa: S603
            [redis_server_binary(), str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)
        wait_until(lambda: self._knows_master(client), timeout=10, what="sentinel to answer")

    @staticmethod
    def _knows_master(client: redis.Redis) -> bool:
        try:
            return bool(client.sentinel_get_master_addr_by_name(MASTER))
        except redis.RedisError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)


@pytest.fixture
def sentinel(redis_server):
    server = SentinelServer(redis_server.port)
    yield server
    server.stop()


@pytest.fixture
def sentinel_queues(sentinel, settings):
    """Point this process's queues at the master through the sentinel only (no URL)."""
    config = rq_connection(
        redis_url="redis://unused.invalid:1/0",
        sentinels=f"127.0.0.1:{sentinel.port}",
        master_name=MASTER,
        sentinel_password="",
        socket_timeout=3,
    )
    settings.RQ_QUEUES = {name: {**config, "DEFAULT_TIMEOUT": 3600} for name in ("high", "default", "low")}
    return sentinel


def test_scheduler_reaches_the_master_through_sentinel(sentinel_queues, redis_server):
    assert scheduler.ping() is True
    due = timezone.now() + timedelta(minutes=5)
    scheduler.schedule(task_id=424242, due=due)
    direct = redis_server.client()
    score = direct.zscore(ScheduledJobRegistry("high", connection=direct).key, "424242")
    assert score == scheduler.release_time(due).timestamp()
    scheduler.cancel(task_id=424242)
    assert not direct.exists("rq:job:424242")


@pytest.mark.e2e
def test_worker_with_scheduler_delivers_through_sentinel(
    transactional_db, sentinel_queues, user, fast_lead, worker_factory, smtp
):
    """The worker and its scheduler process know only the sentinel, not the master's address."""
    proc = worker_factory(
        "sentinel",
        extra_env={
            "REDIS_URL": "redis://unused.invalid:1/0",
            "REDIS_SENTINELS": f"127.0.0.1:{sentinel_queues.port}",
            "REDIS_SENTINEL_MASTER": MASTER,
        },
    )
    due = timezone.now() + timedelta(seconds=2)
    mail = MailSpec(template="welcome", recipients=("s@example.com",), context={"name": "Sentinel"})
    task = services.reserve_task(owner=user, scheduled_at=due, mail=mail, description="via sentinel")
    wait_until(lambda: Task.objects.filter(pk=task.pk, status="finished").exists(), timeout=30, what="finished")
    wait_until(lambda: smtp.to("s@example.com"), timeout=5, what="mail")
    assert min(r.at for r in smtp.received) >= due.timestamp()
    # Warm shutdown interrupts the blocking dequeue; the interrupted connection must be dropped,
    # not reused (redis-py #4292), or the worker hangs until its dequeue timeout (minutes).
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert "unsubscribing from channel" in proc.log_path.read_text()
