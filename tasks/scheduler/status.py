"""What the workers, schedulers and Redis look like from outside: locks, counts, health, stats."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError, ResponseError
from rq.queue import Queue
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import utcparse
from rq.worker import BaseWorker, Worker

from tasks.scheduler.connection import QUEUE_NAMES, SCHEDULER_QUEUE, _connection, _text

logger = logging.getLogger(__name__)


def take_lock(name: str, *, ttl: float) -> bool:
    """Take a Redis lock that expires by itself after ``ttl`` seconds (never released early)."""
    return bool(_connection().set(f"reservemail:lock:{name}", "1", nx=True, px=max(1, int(ttl * 1000))))


def scheduler_status(*, stale_after: float = 10.0) -> dict[str, dict[str, Any]]:
    """Return, per queue, which scheduler holds its lock and whether that scheduler is alive.

    RQ's scheduler writes a heartbeat every second; a lock whose holder has not written one for
    ``stale_after`` seconds belongs to a dead or paused process (the lock itself lives 60 s more).
    """
    connection = _connection()
    status: dict[str, dict[str, Any]] = {}
    now = time.time()
    for name in QUEUE_NAMES:
        holder = _text(connection.get(RQScheduler.get_locking_key(name)))
        beat = _text(connection.hget(SCHEDULER_KEY_TEMPLATE % holder, "last_heartbeat")) if holder else None
        age = round(now - utcparse(beat).replace(tzinfo=UTC).timestamp(), 1) if beat else None
        status[name] = {"holder": holder, "heartbeat_age": age, "alive": age is not None and age <= stale_after}
    return status


_DELETE_IF_EQUAL = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def break_dead_scheduler_locks(*, stale_after: float = 10.0) -> list[str]:
    """Delete scheduler locks whose holder stopped heart-beating, so a live worker's scheduler takes over.

    RQ keeps a dead scheduler's lock for 60 s more, and no other scheduler releases jobs meanwhile.
    The lock is deleted only if it still names the same holder (compare-and-delete). Returns the
    queue names whose lock was broken.
    """
    connection = _connection()
    broken = []
    for name, state in scheduler_status(stale_after=stale_after).items():
        key = RQScheduler.get_locking_key(name)
        if state["holder"] and not state["alive"] and connection.eval(_DELETE_IF_EQUAL, 1, key, state["holder"]):
            logger.warning("broke the lock of dead scheduler %s queue=%s", state["holder"], name)
            broken.append(name)
    return broken


def worker_counts(*, stale_after: float = 60.0) -> dict[str, int]:
    """Return how many registered workers listen on each queue and heart-beat (or are busy with a job)."""
    connection = _connection()
    counts = dict.fromkeys(QUEUE_NAMES, 0)
    now = time.time()
    for worker in Worker.all(connection=connection):
        if not _live(worker, now=now, stale_after=stale_after):
            continue
        for name in worker.queue_names():
            if name in counts:
                counts[name] += 1
    return counts


def eviction_policy() -> str | None:
    """Return Redis's maxmemory-policy (None if CONFIG is not allowed, as on some managed services)."""
    try:
        return _text(_connection().config_get("maxmemory-policy").get("maxmemory-policy"))  # type: ignore[union-attr]
    except ResponseError:
        return None


def warn_if_evicting() -> bool:
    """Log a warning (and return True) if the Redis in use may evict keys, which would lose jobs."""
    try:
        policy = eviction_policy()
    except RedisError as exc:
        logger.warning("could not read Redis maxmemory-policy: %s", exc)
        return False
    if policy is not None and policy != "noeviction":
        logger.warning(
            "Redis maxmemory-policy is %r: it may evict job keys under memory pressure; set noeviction "
            "(the reconciler re-creates lost jobs from the database, but sends may be late)",
            policy,
        )
        return True
    return False


def queue_stats() -> dict[str, dict[str, int]]:
    """Return, per queue, jobs waiting, scheduled, running and failed, and 1 if a scheduler holds its lock.

    Read-only: plain counts, without the registry cleanup that rq's ``count`` runs, so a metrics
    scrape never moves jobs. Raises QueueError when Redis cannot be reached.
    """
    connection = _connection()
    stats = {}
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=connection)
        stats[name] = {
            "queued": queue.count,
            "scheduled": queue.scheduled_job_registry.get_job_count(cleanup=False),
            "started": queue.started_job_registry.get_job_count(cleanup=False),
            "failed": queue.failed_job_registry.get_job_count(cleanup=False),
            "scheduler": int(bool(connection.exists(RQScheduler.get_locking_key(name)))),
        }
    return stats


def workers_on_this_host(*, stale_after: float = 60.0) -> int:
    """How many live RQ workers (heart-beating, or busy) run on this host, by the hostname they registered."""
    here, now = socket.gethostname(), time.time()
    workers = Worker.all(connection=_connection())
    return sum(1 for w in workers if w.hostname == here and _live(w, now=now, stale_after=stale_after))


def _live(worker: BaseWorker, *, now: float, stale_after: float) -> bool:
    """A registered worker that heart-beat within ``stale_after`` seconds, or is busy with a job."""
    beat = worker.last_heartbeat
    fresh = beat is not None and now - beat.replace(tzinfo=UTC).timestamp() <= stale_after
    return fresh or worker.get_state() == "busy"


def worker_count() -> int:
    """Return how many RQ workers are registered (alive, or dead less than their TTL ago)."""
    return Worker.count(connection=_connection())


def scheduler_lock_holder(queue_name: str = SCHEDULER_QUEUE) -> dict[str, str] | None:
    """Return the hostname, pid and name of the scheduler that holds ``queue_name``'s lock, if any.

    Among workers started ``--with-scheduler`` exactly one scheduler holds a queue's lock; when
    it dies without releasing it, another worker takes over once the lock's TTL has passed.
    """
    connection = _connection()
    holder = connection.get(RQScheduler.get_locking_key(queue_name))
    if holder is None:
        return None
    name = _text(holder) or ""
    info = {_text(k) or "": _text(v) or "" for k, v in connection.hgetall(SCHEDULER_KEY_TEMPLATE % name).items()}
    return {"name": name, "hostname": info.get("hostname", ""), "pid": info.get("pid", "")}


RELAY_KEY = "reservemail:relay:refused"


def record_relay_refused(*, reason: str, at: datetime) -> None:
    """Remember that the mail relay refused a worker (TLS or login), for health; kept until a send succeeds."""
    _connection().hset(RELAY_KEY, mapping={"reason": reason[:1000], "at": at.isoformat()})


def clear_relay_refused() -> bool:
    """Forget a recorded relay refusal (a send went through); True if there was one."""
    return bool(_connection().delete(RELAY_KEY))


def relay_refusal() -> dict[str, str] | None:
    """The last recorded relay refusal as {"reason", "at"} (ISO 8601), or None."""
    found = _connection().hgetall(RELAY_KEY)
    if not found:
        return None
    return {_text(key) or "": _text(value) or "" for key, value in found.items()}
