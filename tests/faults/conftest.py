"""The fault rig: a Redis of its own per test (so it can be killed), real workers, the SMTP sink.

Size: the default keeps the suite within CI's budget; FAULTS_FULL=1 runs every case at full size.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from rq.job import Job

from tasks import scheduler, services
from tasks.mail import MailSpec
from tasks.models import Task
from tests.conftest import database_url
from tests.harness import (
    RedisServer,
    SmtpSink,
    kill_group,
    signal_group,
    start_registered_worker,
    stop_process,
    wait_until,
    worker_env,
)

FULL = os.environ.get("FAULTS_FULL", "") not in ("", "0")
TIMEOUT = 1800 if FULL else 300  # seconds per test (pytest-timeout)

# Short bounds so recoveries happen within a test; production defaults are in settings.py.
FAST = {
    "HEARTBEAT_TIMEOUT": "8",
    "RECONCILE_INTERVAL": "2",
    "RELEASE_OVERDUE_SECONDS": "3",
    "EMAIL_TIMEOUT": "5",
    "TASK_PROGRESS_INTERVAL": "0.2",
    "OVERDUE_GRACE_SECONDS": "15",
}
UNFINISHED = (Task.Status.QUEUED, Task.Status.RESERVED, Task.Status.RUNNING)


def size(default: int, full: int) -> int:
    return full if FULL else default


class Rig:
    """One test's Redis, workers and sink; everything it starts it stops, by PID."""

    def __init__(self, sink: SmtpSink, tmp_path: Path, settings) -> None:  # noqa: ANN001
        self.sink = sink
        self.tmp_path = tmp_path
        self.settings = settings
        self.redis: RedisServer | None = None
        self.workers: dict[str, subprocess.Popen] = {}
        self.paused: set[str] = set()
        self.env = dict(FAST)
        self._saved_urls = {name: cfg["URL"] for name, cfg in django_settings.RQ_QUEUES.items()}
        for key, value in FAST.items():
            setattr(settings, key, float(value) if "." in value else int(value))

    # Redis ---------------------------------------------------------------------------------
    def start_redis(self, profile: str = "everysec") -> RedisServer:
        self.redis = RedisServer(profile=profile).start()
        for cfg in django_settings.RQ_QUEUES.values():
            cfg["URL"] = self.redis.url
        self.settings.REDIS_URL = self.redis.url
        return self.redis

    # Workers -------------------------------------------------------------------------------
    def start_worker(self, name: str, **extra: str) -> subprocess.Popen:
        assert self.redis is not None
        full_name = f"{name}-{uuid.uuid4().hex[:6]}"
        env = worker_env(
            redis_url=self.redis.url,
            database_url=database_url(),
            smtp_port=self.sink.port,
            extra={**self.env, **extra},
        )
        log_path = self.tmp_path / f"worker-{full_name}.log"
        proc = start_registered_worker(env, name=full_name, log_path=log_path, conn=self.redis.client())
        self.workers[full_name] = proc
        return proc

    def name_of(self, proc: subprocess.Popen) -> str:
        return next(name for name, p in self.workers.items() if p is proc)

    def kill(self, name: str) -> None:
        kill_group(self.workers[name])

    def pause(self, name: str) -> None:
        signal_group(self.workers[name], signal.SIGSTOP)
        self.paused.add(name)

    def resume(self, name: str) -> None:
        signal_group(self.workers[name], signal.SIGCONT)
        self.paused.discard(name)

    def worker_of_task(self, task_id: int) -> str | None:
        """The name of the worker whose job is running the task (from RQ's job hash)."""
        assert self.redis is not None
        try:
            job = Job.fetch(scheduler.job_id_for(task_id), connection=self.redis.client())
        except Exception:  # noqa: BLE001 - no such job
            return None
        return job.worker_name or None

    def scheduler_worker(self) -> str | None:
        """The worker whose scheduler process holds the lock of the reservations' queue."""
        assert self.redis is not None
        conn = self.redis.client()
        holder = conn.get(f"rq:scheduler-lock:{scheduler.SCHEDULER_QUEUE}")
        pid = conn.hget(f"rq:scheduler:{holder.decode()}", "pid") if holder else None
        if not pid:
            return None
        try:
            group = os.getpgid(int(pid))
        except ProcessLookupError:
            return None
        return next((name for name, p in self.workers.items() if p.pid == group), None)

    def log_count(self, text: str) -> int:
        """How many times ``text`` occurs in all worker logs."""
        return sum(p.log_path.read_text().count(text) for p in self.workers.values())  # type: ignore[attr-defined]

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{p.log_path.read_text()[-4000:]}"  # type: ignore[attr-defined]
            for name, p in self.workers.items()
        )

    # Waiting -------------------------------------------------------------------------------
    def wait_ended(self, task_ids: list[int], *, timeout: float) -> None:
        try:
            wait_until(
                lambda: not Task.objects.filter(pk__in=task_ids, status__in=UNFINISHED).exists(),
                timeout=timeout,
                interval=0.25,
                what="all tasks to end",
            )
        except TimeoutError:
            left = list(Task.objects.filter(pk__in=task_ids, status__in=UNFINISHED).values_list("pk", "status")[:20])
            raise AssertionError(f"tasks not ended: {left}\n{self.logs()}") from None

    def close(self) -> None:
        for name in list(self.paused):
            self.resume(name)
        for proc in self.workers.values():
            stop_process(proc, timeout=10)
        if self.redis is not None:
            if self.redis.proc is not None and self.redis.proc.poll() is None:
                self.redis.resume()
            self.redis.stop()
        for name, cfg in django_settings.RQ_QUEUES.items():
            cfg["URL"] = self._saved_urls[name]
        from tasks.smtp import session

        session.close()


@pytest.fixture
def rig(smtp: SmtpSink, tmp_path: Path, settings, transactional_db) -> Iterator[Rig]:  # noqa: ANN001
    the_rig = Rig(smtp, tmp_path, settings)
    settings.RESERVATION_MIN_LEAD = 1
    try:
        yield the_rig
    finally:
        the_rig.close()


@pytest.fixture
def owners(transactional_db):  # noqa: ANN201
    """Ten users, so notification merges spread over rows as they do with real traffic."""
    model = get_user_model()
    return [model.objects.create_user(username=f"owner{i}", password="pw-owner-123") for i in range(10)]


def one(address: str) -> MailSpec:
    return MailSpec(template="welcome", recipients=(address,), context={"name": "F"})


def reserve_many(owners, count: int, low: float, high: float, *, tag: str, rng: random.Random) -> list[int]:
    """Reserve ``count`` one-recipient mails at random fractional times ``low``-``high`` s after each reserve."""
    ids = []
    for i in range(count):
        due = timezone.now() + timedelta(seconds=rng.uniform(low, high))
        task = services.reserve_task(
            owner=owners[i % len(owners)], scheduled_at=due, mail=one(f"{tag}{i}@example.com"), description=f"{tag}{i}"
        )
        ids.append(task.pk)
    return ids


def arrival_by_task(task_ids: list[int], sink: SmtpSink) -> dict[int, list[float]]:
    """Sink arrival times per task, matched through the deliveries' Message-IDs."""
    from tasks.models import Delivery

    by_id = dict(Delivery.objects.filter(task_id__in=task_ids).values_list("message_id", "task_id"))
    out: dict[int, list[float]] = {}
    for received in sink.received:
        task_id = by_id.get(received.message_id)
        if task_id is not None:
            out.setdefault(task_id, []).append(received.at)
    return out


def lateness(task_ids: list[int], sink: SmtpSink, *, not_before: dict[int, float] | None = None) -> list[float]:
    """Seconds each received mail arrived after its task's due time (negative = early)."""
    due = {pk: at.timestamp() for pk, at in Task.objects.filter(pk__in=task_ids).values_list("pk", "reserved_at")}
    late = []
    for task_id, arrivals in arrival_by_task(task_ids, sink).items():
        base = max(due[task_id], (not_before or {}).get(task_id, 0.0))
        late.extend(at - base for at in arrivals)
    return late


def claimed_early(task_ids: list[int]) -> int:
    """Tasks whose worker claimed them before their due time (never allowed)."""
    rows = Task.objects.filter(pk__in=task_ids, started_at__isnull=False).values_list("started_at", "reserved_at")
    return sum(1 for started, due in rows if due is not None and started < due)
