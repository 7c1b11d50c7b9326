"""The only module that talks to RQ. It takes task ids and aware datetimes, never models.

Every job's id is derived from its task's primary key (``job_id_for``), so cancel, reschedule and
the reconciler find a task's job from the id alone, and a second job for the same task is refused
(``unique=True``) instead of silently overwriting the first.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import django_rq
from django.conf import settings
from django_rq.connection_utils import get_redis_connection
from redis import Redis
from redis.exceptions import RedisError, ResponseError
from rq import Retry, worker_registration
from rq.command import send_stop_job_command
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus, get_current_job
from rq.queue import Queue
from rq.registry import ScheduledJobRegistry
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.utils import utcparse
from rq.worker import SimpleWorker, Worker

logger = logging.getLogger(__name__)

SCHEDULER_QUEUE = "high"  # reservations are scheduled here
SEND_QUEUE = "default"  # immediate sends
QUEUE_NAMES = ("high", "default", "low")
JOB_FUNC = "tasks.jobs.send_task"

JobState = Literal["scheduled", "queued", "started", "deferred", "finished", "failed", "stopped", "canceled"]

__all__ = [
    "SCHEDULER_QUEUE",
    "SEND_QUEUE",
    "JobInfo",
    "break_dead_scheduler_locks",
    "QueueError",
    "cancel",
    "discard_jobs",
    "enqueue",
    "eviction_policy",
    "inspect_jobs",
    "job_id_for",
    "job_state",
    "ping",
    "release_overdue",
    "requeue",
    "reschedule",
    "retries_left",
    "schedule",
    "scheduler_status",
    "stop",
    "take_lock",
    "worker_counts",
]

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


def _new_job(queue: Queue, task_id: int, retries_used: int = 0) -> Job:
    return queue.create_job(
        JOB_FUNC,
        args=(task_id,),
        job_id=job_id_for(task_id),
        retry=_retry(retries_used),
        description=f"send task {task_id}",
    )


def ping(*, timeout: float | None = None) -> bool:
    """Return True when Redis answers within ``timeout`` seconds (default: the socket timeout)."""
    url = settings.RQ_QUEUES[SCHEDULER_QUEUE].get("URL")  # absent with Sentinel
    client = _client(url, timeout) if timeout is not None and url else _connection()
    try:
        return bool(client.ping())
    except RedisError:
        return False


def schedule(*, task_id: int, due: datetime, queue_name: str = SCHEDULER_QUEUE, retries_used: int = 0) -> None:
    """Schedule the task's job to be released at ``release_time(due)``; never a second job.

    ``retries_used`` shortens the job's retry policy, for a task handed back after attempts made
    outside its own job (a batch).
    """
    queue = _queue(queue_name)
    try:
        queue.schedule_job(_new_job(queue, task_id, retries_used), release_time(due), unique=True)
    except DuplicateJobError:
        logger.info("job already exists, moving it task_id=%s job_id=%s", task_id, job_id_for(task_id))
        reschedule(task_id=task_id, due=due, queue_name=queue_name)
        return
    # DEBUG: the service logs the reservation (with its due time) at INFO already.
    logger.debug("scheduled task_id=%s job_id=%s due=%s", task_id, job_id_for(task_id), due)


def enqueue(*, task_id: int, queue_name: str = SEND_QUEUE) -> None:
    """Put the task's job on ``queue_name`` now; a job that already exists is left alone."""
    queue = _queue(queue_name)
    try:
        queue.enqueue_job(_new_job(queue, task_id), unique=True)
    except DuplicateJobError:
        state = job_state(task_id=task_id)
        if state in ("queued", "started", "scheduled"):
            logger.info("job already live task_id=%s state=%s", task_id, state)
            return
        _delete(task_id)
        queue.enqueue_job(_new_job(queue, task_id), unique=True)
    logger.info("enqueued task_id=%s job_id=%s queue=%s", task_id, job_id_for(task_id), queue_name)


def reschedule(*, task_id: int, due: datetime, queue_name: str = SCHEDULER_QUEUE) -> None:
    """Move the task's scheduled job to ``due``; schedule a new one if the job is missing."""
    queue = _queue(queue_name)
    connection = queue.connection
    try:
        job = Job.fetch(job_id_for(task_id), connection=connection)
    except NoSuchJobError:
        schedule(task_id=task_id, due=due, queue_name=queue_name)
        return
    queue_of_job = Queue(job.origin or queue_name, connection=connection)
    status = job.get_status(refresh=False)
    if status == JobStatus.STARTED or (status == JobStatus.QUEUED and not queue_of_job.remove(job)):
        # Already running (it claims only a task that is due, so it cannot send early): the
        # reconciler schedules the moved task again. A queued one was taken back just above.
        logger.info("job already released task_id=%s", task_id)
        return
    for registry_queue in {queue_of_job.name, queue_name}:
        Queue(registry_queue, connection=connection).scheduled_job_registry.remove(job)
    job.set_status(JobStatus.SCHEDULED)
    ScheduledJobRegistry(queue=queue).schedule(job, release_time(due))
    connection.sadd(Queue.redis_queues_keys, queue.key)
    logger.info("rescheduled task_id=%s job_id=%s due=%s", task_id, job.id, due.isoformat())


def _delete(task_id: int) -> None:
    connection = _connection()
    for name in QUEUE_NAMES:  # a job a worker popped but never started
        connection.lrem(f"{Queue(name, connection=connection).key}:intermediate", 0, job_id_for(task_id))
    try:
        job = Job.fetch(job_id_for(task_id), connection=connection)
    except NoSuchJobError:
        return
    with contextlib.suppress(InvalidJobOperation):  # already cancelled
        job.cancel()
    try:
        job.delete()
    except (NoSuchJobError, ValueError) as exc:
        # A worker picked the job up meanwhile (rq raises ValueError for its vanished execution
        # record); the task row decides whether that job sends anything.
        logger.info("job changed while deleting task_id=%s: %s", task_id, exc)


def cancel(*, task_id: int) -> None:
    """Cancel and delete the task's job; a missing or already cancelled job is success."""
    _delete(task_id)
    logger.info("cancelled job task_id=%s job_id=%s", task_id, job_id_for(task_id))


def discard_jobs(*, task_ids: list[int], queue_name: str) -> int:
    """Remove the waiting jobs of tasks that another job has claimed and is sending (a batch).

    Only a job still waiting (in the queue or the scheduled registry) is removed, atomically per
    job, so one that already started is left to find its task RUNNING and do nothing. Saves the
    worker an RQ round trip per redundant job. Returns how many jobs were removed.
    """
    if not task_ids:
        return 0
    connection = _connection()
    queue_key = Queue(queue_name, connection=connection).key
    registry_key = ScheduledJobRegistry(queue_name, connection=connection).key
    job_ids = [job_id_for(task_id) for task_id in task_ids]
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.lrem(queue_key, 1, job_id)
            pipe.zrem(registry_key, job_id)
        removed = pipe.execute()
    gone = [job_id for i, job_id in enumerate(job_ids) if removed[2 * i] or removed[2 * i + 1]]
    if gone:
        connection.delete(*(Job.key_for(job_id) for job_id in gone))
    return len(gone)


def stop(*, task_id: int) -> None:
    """Ask the worker running the task's job to stop it; a job not running is success."""
    try:
        send_stop_job_command(_connection(), job_id_for(task_id))
    except (NoSuchJobError, InvalidJobOperation):
        return
    logger.info("sent stop-job task_id=%s job_id=%s", task_id, job_id_for(task_id))


def job_state(*, task_id: int) -> JobState | None:
    """Return where the task's job is in RQ (``None`` if Redis holds no such job)."""
    try:
        job = Job.fetch(job_id_for(task_id), connection=_connection())
    except NoSuchJobError:
        return None
    status = job.get_status(refresh=False)
    return status.value if status is not None else None  # type: ignore[return-value]


def due_time(*, task_id: int) -> datetime | None:
    """Return the time the task's job is scheduled for, or None if it is not scheduled."""
    connection = _connection()
    for name in QUEUE_NAMES:
        score = connection.zscore(ScheduledJobRegistry(name, connection=connection).key, job_id_for(task_id))
        if score is not None:
            return datetime.fromtimestamp(score, tz=UTC)
    return None


def retries_left() -> int | None:
    """Return how many retries RQ has left for the job running now (None outside a job)."""
    job = get_current_job()
    if job is None:
        return None
    return job.retries_left or 0


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


@dataclass(frozen=True)
class JobInfo:
    """What Redis holds for one task's job: its status and queue (None: no job), its scheduled time."""

    status: str | None
    origin: str | None
    scheduled_at: float | None  # score in a ScheduledJobRegistry (epoch seconds), None if not scheduled


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def inspect_jobs(task_ids: Sequence[int], *, chunk: int = 500) -> dict[int, JobInfo]:
    """Return the job of each task as Redis sees it, in pipelined round trips (for the reconciler)."""
    connection = _connection()
    registry_keys = [ScheduledJobRegistry(name, connection=connection).key for name in QUEUE_NAMES]
    width = 1 + len(registry_keys)
    found: dict[int, JobInfo] = {}
    for start in range(0, len(task_ids), chunk):
        ids = task_ids[start : start + chunk]
        with connection.pipeline(transaction=False) as pipe:
            for task_id in ids:
                pipe.hmget(Job.key_for(job_id_for(task_id)), ["status", "origin"])
                for key in registry_keys:
                    pipe.zscore(key, job_id_for(task_id))
            replies = pipe.execute()
        for i, task_id in enumerate(ids):
            (status, origin), *scores = replies[i * width : (i + 1) * width]
            score = next((float(value) for value in scores if value is not None), None)
            found[task_id] = JobInfo(_text(status), _text(origin), score)
    return found


def is_waiting_in_queue(*, task_id: int, queue_name: str) -> bool:
    """True if the task's job id sits in the queue's list waiting for a worker.

    Not in the list but still "queued" means a worker popped it (RQ moves it to an intermediate
    list) and never started it, e.g. because Redis died right then: RQ itself frees such a job
    only after a minute and through its failure path.
    """
    connection = _connection()
    return connection.lpos(Queue(queue_name, connection=connection).key, job_id_for(task_id)) is not None


def release_overdue(*, older_than: float) -> list[int]:
    """Move jobs that RQ's scheduler should have released ``older_than`` seconds ago onto their queue.

    A backup for a dead, paused or lock-less scheduler. Whoever removes a job id from the scheduled
    registry first (ZREM returns 1) enqueues it, so two reconcilers never both release it; a race
    with RQ's own non-atomic release can queue the same job id twice, and the task's conditional
    claim makes the second run a no-op. Returns the task ids released.
    """
    connection = _connection()
    cutoff = time.time() - older_than
    released: list[int] = []
    for name in QUEUE_NAMES:
        queue = _queue(name)
        key = queue.scheduled_job_registry.key
        for raw in connection.zrangebyscore(key, 0, cutoff, start=0, num=1000):
            job_id = raw.decode() if isinstance(raw, bytes) else str(raw)
            if not connection.zrem(key, job_id):
                continue
            try:
                job = Job.fetch(job_id, connection=connection)
            except NoSuchJobError:
                continue
            queue.enqueue_job(job)
            logger.warning("released overdue job the scheduler left job_id=%s queue=%s", job_id, name)
            if job_id.isdigit():
                released.append(int(job_id))
    return released


def requeue(*, task_id: int, queue_name: str = SEND_QUEUE) -> None:
    """Replace the task's job, whatever RQ thinks of it (started by a dead worker, failed), by a fresh queued one."""
    _delete(task_id)
    queue = _queue(queue_name)
    try:
        queue.enqueue_job(_new_job(queue, task_id), unique=True)
    except DuplicateJobError:
        logger.info("job re-created meanwhile, leaving it task_id=%s", task_id)
        return
    logger.info("requeued task_id=%s job_id=%s queue=%s", task_id, job_id_for(task_id), queue_name)


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
        beat = worker.last_heartbeat
        fresh = beat is not None and now - beat.replace(tzinfo=UTC).timestamp() <= stale_after
        if not fresh and worker.get_state() != "busy":
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


class MailWorker(SimpleWorker):
    """The worker for reservemail's queues: no fork per job, and quick recovery from Redis trouble.

    Not forking keeps one process (and its SMTP connection and database connection) across jobs,
    which is several times faster per mail. The maintenance step is where RQ restarts a dead
    scheduler process; RQ's default is 10 minutes, and an idle worker only reaches it when its
    blocking pop returns (after ~405 s), so after a Redis outage reservations could wait that long.
    Here maintenance runs every WORKER_MAINTENANCE_INTERVAL seconds, the blocking pop returns as
    often, reconnect back-off is capped at 2 s, Redis errors and socket timeouts (a hung Redis)
    are retried instead of ending the worker, and every RECONCILE_INTERVAL seconds one worker (a
    Redis lock decides which) runs the reconciler.
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
        try:
            super().run_maintenance_tasks()
            self._ensure_registered()
        except RedisError as exc:
            self.log.error("Worker %s: Redis error in maintenance (%s); carrying on", self.name, exc)
            return
        self._reconcile_if_due()

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
        # Imported here: the services import this module, and only the worker calls back into them.
        from django.db import close_old_connections, connection

        from tasks.services.reconcile import reconcile_tasks

        try:
            if not connection.in_atomic_block:
                close_old_connections()
            reconcile_tasks()
        except Exception:  # a failed pass must not stop the worker; the next one retries
            self.log.exception("Worker %s: reconcile failed", self.name)


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
