"""Read-only health of the whole delivery path: database, Redis, workers, scheduler, the relay, overdue sends.

Selector-like: it only reads (the database, and Redis through tasks.scheduler). Used by
``manage.py health``, the ``/healthz`` JSON view and the admin's warning banner.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Min
from django.utils import timezone

from tasks import scheduler
from tasks.models import Task

_cache: dict[str, Any] = {"at": 0.0, "report": None}


def _database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return {"ok": True}
    except DatabaseError as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def _overdue(now: datetime) -> dict[str, Any]:
    grace = settings.OVERDUE_GRACE_SECONDS
    rows = Task.objects.filter(status=Task.Status.RESERVED, reserved_at__lt=now - timedelta(seconds=grace))
    found = rows.aggregate(oldest=Min("reserved_at"))
    stuck = Task.objects.filter(
        status=Task.Status.RUNNING, heartbeat_at__lt=now - timedelta(seconds=settings.HEARTBEAT_TIMEOUT)
    )
    oldest = found["oldest"]
    return {
        "grace_seconds": grace,
        "count": rows.count(),
        "oldest_seconds": round((now - oldest).total_seconds(), 1) if oldest else None,
        "stuck_running": stuck.count(),
    }


PROBE_TIMEOUT = 1.0  # a hung Redis costs a health check (and an admin page) at most this long


def _redis() -> dict[str, Any]:
    try:
        if not scheduler.ping(timeout=min(PROBE_TIMEOUT, settings.REDIS_SOCKET_TIMEOUT)):
            raise scheduler.QueueError(f"no answer within {PROBE_TIMEOUT} s")
        policy = scheduler.eviction_policy()
        return {
            "redis": {"ok": True, "maxmemory_policy": policy, "evicts_keys": policy not in (None, "noeviction")},
            "workers": scheduler.worker_counts(),
            "scheduler": scheduler.scheduler_status(),
            "relay": _relay(),
        }
    except scheduler.QueueError as exc:
        return {
            "redis": {"ok": False, "error": f"{type(exc).__name__}: {exc}"},
            "workers": None,
            "scheduler": None,
            "relay": None,
        }


def _relay() -> dict[str, Any]:
    """What the workers last learned of the mail relay: refused (TLS or login, with the reason and when), or not."""
    refusal = scheduler.relay_refusal()
    if refusal is None:
        return {"ok": True, "refused": False}
    return {"ok": False, "refused": True, "reason": refusal.get("reason", ""), "at": refusal.get("at")}


def health_report(*, now: datetime | None = None) -> dict[str, Any]:
    """Return the health as a JSON-ready dict; ``ok`` is False if anything needs attention.

    Not ok when: the database or Redis does not answer, a queue has no live worker, a queue has
    no live scheduler, a worker found the mail relay refusing it (certificate, TLS or login) and
    no send has gone through since, or a reservation is more than OVERDUE_GRACE_SECONDS past due and still
    reserved, or a running task has not heart-beaten for HEARTBEAT_TIMEOUT.
    """
    now = now or timezone.now()
    report: dict[str, Any] = {"time": now.isoformat(), "database": _database()}
    report.update(_redis())
    report["overdue"] = _overdue(now) if report["database"]["ok"] else None
    schedulers = report["scheduler"] or {}
    report["scheduler_running"] = bool(schedulers) and all(s["alive"] for s in schedulers.values())
    workers = report["workers"] or {}
    problems = []
    if not report["database"]["ok"]:
        problems.append("database unavailable")
    if not report["redis"]["ok"]:
        problems.append("Redis unavailable")
    elif report["redis"]["evicts_keys"]:
        problems.append(f"Redis may evict keys (maxmemory-policy {report['redis']['maxmemory_policy']})")
    if report["redis"]["ok"]:
        problems += [f"no live worker on queue {q}" for q, n in workers.items() if n == 0]
        if not report["scheduler_running"]:
            problems.append("scheduler not running")
        if report["relay"]["refused"]:
            problems.append(f"relay refused: {report['relay']['reason'].removeprefix('relay refused: ')}")
    overdue = report["overdue"] or {}
    if overdue.get("count"):
        problems.append(
            f"{overdue['count']} reservation(s) overdue by more than {overdue['grace_seconds']} s "
            f"(oldest {overdue['oldest_seconds']} s)"
        )
    if overdue.get("stuck_running"):
        problems.append(f"{overdue['stuck_running']} running task(s) without heartbeat")
    report["problems"] = problems
    report["ok"] = not problems
    return report


def cached_health_report(*, max_age: float = 5.0) -> dict[str, Any]:
    """The health report, computed at most every ``max_age`` seconds per process (for page banners)."""
    if _cache["report"] is None or time.monotonic() - _cache["at"] > max_age:
        _cache["report"] = health_report()
        _cache["at"] = time.monotonic()
    return _cache["report"]
