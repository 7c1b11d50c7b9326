"""Turn the Redis environment variables into a django-rq connection config (plain Redis or Sentinel).

Kept apart from settings.py so the mapping is a pure function that tests can call directly.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured
from redis.sentinel import SentinelManagedConnection
from redis.utils import SENTINEL


class SentinelMasterConnection(SentinelManagedConnection):
    """A Sentinel-managed connection that is dropped when a read is interrupted.

    redis-py's SentinelManagedConnection (unlike every other connection class) keeps a connection
    whose reply was never read (redis/redis-py#4292), so the next command receives the previous
    one's reply. RQ interrupts blocking reads with signals (warm shutdown, job timeouts): with the
    stock class a worker hung on SIGTERM until its blocking dequeue timed out.
    """

    def read_response(
        self,
        disable_decoding: Any = False,
        *,
        timeout: float | object = SENTINEL,
        disconnect_on_error: bool | None = True,
        push_request: bool | None = False,
    ) -> Any:
        return super().read_response(
            disable_decoding=disable_decoding,
            timeout=timeout,
            disconnect_on_error=disconnect_on_error,
            push_request=push_request,
        )


def parse_sentinels(value: str) -> list[tuple[str, int]]:
    """Parse ``"host:port,host:port"`` (IPv6 as ``[::1]:26379``) into (host, port) pairs."""
    sentinels = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"REDIS_SENTINELS: {item!r} is not host:port")
        sentinels.append((host, int(port)))
    return sentinels


def rq_connection(
    *, redis_url: str, sentinels: str, master_name: str, sentinel_password: str, socket_timeout: float
) -> dict[str, Any]:
    """Return the connection part of an ``RQ_QUEUES`` entry.

    Without sentinels: ``{"URL": redis_url}``. With sentinels, the master is found through them
    by ``master_name``, and ``redis_url`` only supplies the master's database number, user name
    and password (its host and port are ignored: the sentinels say where the master is).
    """
    hosts = parse_sentinels(sentinels)
    if not hosts:
        return {"URL": redis_url}
    if not master_name:
        raise ImproperlyConfigured("REDIS_SENTINEL_MASTER must name the monitored master when REDIS_SENTINELS is set")
    url = urlparse(redis_url)
    path = url.path.strip("/")
    if path and not path.isdigit():
        raise ImproperlyConfigured(f"REDIS_URL: database {path!r} is not a number")
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_timeout}
    sentinel_kwargs: dict[str, Any] = dict(timeouts)
    if sentinel_password:
        sentinel_kwargs["password"] = sentinel_password
    return {
        "SENTINELS": hosts,
        "MASTER_NAME": master_name,
        "DB": int(path or 0),
        "USERNAME": unquote(url.username) if url.username else None,
        "PASSWORD": unquote(url.password) if url.password else None,
        "SOCKET_TIMEOUT": socket_timeout,
        "CONNECTION_KWARGS": {
            "socket_connect_timeout": socket_timeout,
            "health_check_interval": 30,
            "connection_class": SentinelMasterConnection,
        },
        "SENTINEL_KWARGS": sentinel_kwargs,
    }
