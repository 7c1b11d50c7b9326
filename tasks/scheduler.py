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
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal

import django_rq
from django.conf import settings
from django_rq.connection_utils import get_redis_connection
from redis import Redis
from redis.exceptions import RedisError
from rq import Retry
from rq.command import send_stop_job_command
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus, get_current_job
from rq.queue import Queue
from rq.registry import ScheduledJobRegistry
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
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
    "QueueError",
    "cancel",
    "discard_jobs",
    "enqueue",
    "job_id_for",
    "job_state",
    "ping",
    "reschedule",
    "retries_left",
    "schedule",
    "stop",
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


def ping() -> bool:
    """Return True when Redis answers within the socket timeout."""
    try:
        return bool(_connection().ping())
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
    logger.info("scheduled task_id=%s job_id=%s due=%s", task_id, job_id_for(task_id), due.isoformat())


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
    try:
        job = Job.fetch(job_id_for(task_id), connection=_connection())
    except NoSuchJobError:
        return
    with contextlib.suppress(InvalidJobOperation):  # already cancelled
        job.cancel()
    job.delete()


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


class MailWorker(SimpleWorker):
    """The worker for reservemail's queues: no fork per job, and a short maintenance interval.

    Not forking keeps one process (and its SMTP connection and database connection) across jobs,
    which is several times faster per mail. The maintenance step is where RQ restarts a dead
    scheduler process; RQ's default is 10 minutes, so after a Redis outage reservations could
    wait that long. We run it every WORKER_MAINTENANCE_INTERVAL seconds instead.

    An idle worker only reaches its maintenance step when its blocking dequeue returns, which RQ
    lets wait ``worker_ttl - 15`` seconds (405 s): so the dequeue is capped at the maintenance
    interval too. Otherwise, when the host whose scheduler holds the lock dies, an idle survivor
    would take the scheduler over only minutes after the lock's 61-second lease ran out.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("maintenance_interval", settings.WORKER_MAINTENANCE_INTERVAL)
        super().__init__(*args, **kwargs)

    @property
    def dequeue_timeout(self) -> int:
        return max(1, min(super().dequeue_timeout, int(self.maintenance_interval)))

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
    name = _text(holder)
    info = {_text(k): _text(v) for k, v in connection.hgetall(SCHEDULER_KEY_TEMPLATE % name).items()}
    return {"name": name, "hostname": info.get("hostname", ""), "pid": info.get("pid", "")}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
