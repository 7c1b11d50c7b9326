"""The RQ worker class for reservemail's queues and the scheduler it starts (RQ_WORKER_CLASS).

It calls into the services (the reconciler) and, through tasks.jobs, the delivery pipeline; nothing
imports it back, so tasks.scheduler stays a pure adapter."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.migrations.executor import MigrationExecutor
from redis.exceptions import RedisError
from rq import worker_registration
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.job import Job
from rq.queue import Queue
from rq.scheduler import RQScheduler
from rq.worker import SimpleWorker

from series.upkeep import reconcile_series
from tasks.scheduler import take_lock, warn_if_evicting
from tasks.services.reconcile import reconcile_tasks
from tasks.smtp import session

# How often a worker started before `migrate` looks again, and how often it says so in its log.
MIGRATION_POLL_SECONDS = 2.0
MIGRATION_LOG_SECONDS = 60.0


def pending_migrations() -> list[str]:
    """The migrations this code has that the database lacks ("app.name"), in the order migrate applies them."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def wait_for_migrations(*, log: Any) -> None:
    """Block until the database has every migration of this code; the worker takes no job before.

    Why: workers upgraded before `migrate` ran would send with statements the old schema cannot
    answer (a column or an index that does not exist yet: tasks.delivery.records names its index),
    and each such send would fail its task. Waiting leaves the jobs in Redis; a stop signal ends
    the wait (nothing is registered yet).
    """
    logged: float | None = None
    while pending := pending_migrations():
        if logged is None or time.monotonic() - logged >= MIGRATION_LOG_SECONDS:
            logged = time.monotonic()
            log.error(
                "the database lacks %s migration(s) (%s); run `manage.py migrate`. Waiting before taking jobs.",
                len(pending),
                ", ".join(pending),
            )
        time.sleep(MIGRATION_POLL_SECONDS)
        close_old_connections()


class MailScheduler(RQScheduler):
    """RQ's scheduler, moving due jobs every SCHEDULER_INTERVAL seconds instead of every 1 s.

    RQ derives its lock TTLs from ``interval`` (Redis wants whole seconds there), so that stays
    at RQ's 1 s and only the loop's sleep is shorter. The loop is RQ 2.12's ``work``.
    """

    def work(self) -> None:
        self._install_signal_handlers()
        self.register_birth()
        while True:
            if self._stop_requested:
                self.stop()
                break
            if self.should_reacquire_locks:
                self.acquire_locks()
            self.heartbeat()
            self.enqueue_scheduled_jobs()
            time.sleep(float(settings.SCHEDULER_INTERVAL))


class MailWorker(SimpleWorker):
    """The worker for reservemail's queues: no fork per job, and quick recovery from Redis trouble.

    Not forking keeps one process (and its SMTP connection and database connection) across jobs,
    which is several times faster per mail. The maintenance step is where RQ restarts a dead
    scheduler process; RQ's default is 10 minutes, and an idle worker only reaches it when its
    blocking pop returns (after ~405 s), so after a Redis outage reservations could wait that long.
    Here maintenance runs every WORKER_MAINTENANCE_INTERVAL seconds, the blocking pop returns as
    often, reconnect back-off is capped at 2 s, Redis errors and socket timeouts (a hung Redis)
    are retried instead of ending the worker, and every RECONCILE_INTERVAL seconds one worker (a
    Redis lock decides which) runs the reconciler. The worker's relay connection is closed with
    QUIT once idle for EMAIL_IDLE_SECONDS (checked at each maintenance step) and when it stops.
    """

    max_connection_wait_time = 2.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("maintenance_interval", settings.WORKER_MAINTENANCE_INTERVAL)
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:
        return max(1, min(self.worker_ttl - 15, int(self.maintenance_interval)))

    def _start_scheduler(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
    ) -> None:
        """Start RQ's scheduler as RQ 2.12 does, but polling every SCHEDULER_INTERVAL (RQ: 1 s)."""
        self.scheduler = MailScheduler(
            self.queues,
            connection=self.connection,
            logging_level=logging_level if logging_level is not None else self.log.level,
            date_format=date_format,
            log_format=log_format,
            serializer=self.serializer,
        )
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    @property
    def connection_timeout(self) -> int:
        # Socket timeout of the worker's connection (and its scheduler's): above the blocking pop.
        return self.dequeue_timeout + 25

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        wait_for_migrations(log=self.log)
        super().bootstrap(*args, **kwargs)
        warn_if_evicting()

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except RedisError as exc:  # a timeout, or an error before RQ's own retry loop: RQ would quit
                self.log.error("Worker %s: Redis error while waiting for jobs (%s); retrying in 1 s", self.name, exc)
                time.sleep(1.0)

    # RQ's work loop ends the worker on any Redis error outside its blocking pop. A worker that
    # quits needs a supervisor to come back; one that waits keeps its scheduler coming back too.
    # So the calls the loop makes between pops log Redis errors and carry on.

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except RedisError as exc:
            self.log.error("Worker %s: Redis error checking suspension (%s); carrying on", self.name, exc)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        try:
            super().heartbeat(timeout)
        except RedisError as exc:
            self.log.error("Worker %s: Redis error on heartbeat (%s); carrying on", self.name, exc)

    def execute_job(self, job: Job, queue: Queue) -> None:
        try:
            super().execute_job(job, queue)
        except RedisError as exc:
            # The job ran (or not); its task row says which. Only RQ's bookkeeping is lost.
            self.log.error("Worker %s: Redis error around job %s (%s); the task row decides", self.name, job.id, exc)

    def run_maintenance_tasks(self) -> None:
        if session.close_if_idle():
            self.log.info("Worker %s: closed the idle mail connection", self.name)
        try:
            super().run_maintenance_tasks()
            self._ensure_registered()
        except RedisError as exc:
            self.log.error("Worker %s: Redis error in maintenance (%s); carrying on", self.name, exc)
            return
        self._reconcile_if_due()

    def teardown(self) -> None:
        session.shutdown()  # QUIT, so the relay sees a clean end rather than a dropped TLS session
        super().teardown()

    def _ensure_registered(self) -> None:
        """Register again if Redis lost our keys (restarted without persistence), so health sees us."""
        if self.connection.sismember(self.redis_workers_keys, self.key):
            return
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=self.serialize())
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()
        worker_registration.register(self)
        self.log.warning("Worker %s: Redis had lost this worker's registration; registered again", self.name)

    def _reconcile_if_due(self) -> None:
        if settings.RECONCILE_INTERVAL <= 0 or not take_lock("reconcile", ttl=settings.RECONCILE_INTERVAL):
            return
        try:
            if not connection.in_atomic_block:
                close_old_connections()
            reconcile_tasks(horizon=settings.RECONCILE_HORIZON)
            reconcile_series()  # after the tasks' pass, which marks missed occurrences
        except Exception:  # a failed pass must not stop the worker; the next one retries
            self.log.exception("Worker %s: reconcile failed", self.name)
