"""Queue names, the Redis client and the timing rules every other scheduler module shares."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import django_rq
from django.conf import settings
from django_rq.connection_utils import get_redis_connection
from redis import Redis
from redis.exceptions import RedisError
from rq import Retry
from rq.queue import Queue

SCHEDULER_QUEUE = "high"  # reservations are scheduled here
SEND_QUEUE = "default"  # immediate sends
QUEUE_NAMES = ("high", "default", "low")
JOB_FUNC = "tasks.jobs.send_task"

JobState = Literal["scheduled", "queued", "started", "deferred", "finished", "failed", "stopped", "canceled"]


# Redis errors and socket timeouts reach callers as this one type.
QueueError = RedisError


def job_id_for(task_id: int) -> str:
    """Return the RQ job id of a task: its primary key as a string."""
    return str(task_id)


@lru_cache(maxsize=8)
def _client(url: str, timeout: float) -> Redis:
    return Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30)


_sentinel_clients: dict[str, Redis] = {}


def _sentinel_client(config: dict[str, Any]) -> Redis:
    # The Sentinel config from settings carries its own socket timeouts; the client asks the
    # sentinels for the current master on every new connection, so it follows a failover.
    key = repr(sorted(config.items()))
    if key not in _sentinel_clients:
        if len(_sentinel_clients) >= 8:
            _sentinel_clients.clear()
        _sentinel_clients[key] = get_redis_connection(config)
    return _sentinel_clients[key]


def _connection() -> Redis:
    """One pooled client per URL, with socket timeouts so a hung Redis fails fast (django-rq
    ignores connection kwargs for URL configs). Without a URL, the config is Sentinel's."""
    config = settings.RQ_QUEUES[SCHEDULER_QUEUE]
    if "URL" not in config:
        return _sentinel_client(config)
    return _client(config["URL"], settings.REDIS_SOCKET_TIMEOUT)


def _queue(name: str) -> Queue:
    # We call the queue from transaction.on_commit() ourselves, so enqueue at once.
    return django_rq.get_queue(name, commit_mode="auto", connection=_connection())


def _retry(used: int = 0) -> Retry | None:
    intervals = list(settings.TASK_RETRY_INTERVALS)[used:]
    return Retry(max=len(intervals), interval=intervals) if intervals else None


def round_up_to_second(when: datetime) -> datetime:
    """RQ keeps whole-second due times; round up so a job is never released early."""
    if when.tzinfo is None:
        raise ValueError("naive datetime")
    ts = math.ceil(when.timestamp())
    return datetime.fromtimestamp(ts, tz=UTC)


def release_time(due: datetime) -> datetime:
    """When RQ should release a job due at ``due``: JOB_RELEASE_LEAD seconds early, in whole seconds.

    RQ keeps whole-second scores and its scheduler polls every SCHEDULER_INTERVAL, so a job scored
    at its due time rounded up arrives up to 1 s + the interval late. Scored at floor(due - lead)
    it arrives before the due time, and the job waits for the exact instant (the row's reserved_at
    decides, and the claim refuses a task not yet due): never early, and not late. A lead of -1
    gives the plain round-up (released at or after the due time), kept for comparison.
    """
    if due.tzinfo is None:
        raise ValueError("naive datetime")
    return datetime.fromtimestamp(math.floor(due.timestamp() - float(settings.JOB_RELEASE_LEAD)), tz=UTC)


def ping(*, timeout: float | None = None) -> bool:
    """Return True when Redis answers within ``timeout`` seconds (default: the socket timeout)."""
    url = settings.RQ_QUEUES[SCHEDULER_QUEUE].get("URL")  # absent with Sentinel
    client = _client(url, timeout) if timeout is not None and url else _connection()
    try:
        return bool(client.ping())
    except RedisError:
        return False


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value
