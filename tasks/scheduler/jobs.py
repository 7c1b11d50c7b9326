"""One task's job: schedule, enqueue, move, cancel, stop, inspect; all keyed by ``job_id_for``."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rq.command import send_stop_job_command
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus, get_current_job
from rq.queue import Queue
from rq.registry import ScheduledJobRegistry

from tasks.scheduler.connection import (
    JOB_FUNC,
    QUEUE_NAMES,
    SCHEDULER_QUEUE,
    SEND_QUEUE,
    JobState,
    _connection,
    _queue,
    _retry,
    _text,
    job_id_for,
    release_time,
)

logger = logging.getLogger(__name__)


def _new_job(queue: Queue, task_id: int, retries_used: int = 0) -> Job:
    return queue.create_job(
        JOB_FUNC,
        args=(task_id,),
        job_id=job_id_for(task_id),
        retry=_retry(retries_used),
        description=f"send task {task_id}",
    )


def schedule(*, task_id: int, due: datetime, queue_name: str = SCHEDULER_QUEUE, retries_used: int = 0) -> None:
    """Schedule the task's job to be released at ``release_time(due)``; never a second job.

    ``retries_used`` shortens the job's retry policy, for a task handed back after attempts made
    outside its own job (in a slice another job claimed).
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


def enqueue_helpers(*, task_id: int, count: int, queue_name: str = SEND_QUEUE) -> int:
    """Queue up to ``count`` extra jobs for a task being sent, so idle workers lease its open recipients too.

    Helper job ids are ``<task id>-h<n>``: never the task's own job id, so cancel and the
    reconciler still find that one alone; a helper that finds its task ended does nothing.
    Returns how many were queued.
    """
    queue = _queue(queue_name)
    added = 0
    for n in range(max(0, min(count, 8))):
        job_id = f"{job_id_for(task_id)}-h{n}"
        job = queue.create_job(JOB_FUNC, args=(task_id,), job_id=job_id, description=f"help send task {task_id}")
        try:
            queue.enqueue_job(job, unique=True)
        except DuplicateJobError:
            existing = Job.fetch(job_id, connection=queue.connection)
            if existing.get_status(refresh=False) in (JobStatus.QUEUED, JobStatus.STARTED):
                continue
            existing.delete()
            queue.enqueue_job(job, unique=True)
        added += 1
    if added:
        logger.info("queued %s helper job(s) task_id=%s", added, task_id)
    return added


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
    try:
        with contextlib.suppress(InvalidJobOperation):  # already cancelled
            job.cancel()
        job.delete()
    except (NoSuchJobError, ValueError) as exc:
        # A worker picked the job up or finished it meanwhile (rq raises ValueError for a vanished
        # execution record, in cancel as in delete); the task row decides whether it sends anything.
        logger.info("job changed while deleting task_id=%s: %s", task_id, exc)


def cancel(*, task_id: int) -> None:
    """Cancel and delete the task's job; a missing or already cancelled job is success."""
    _delete(task_id)
    logger.info("cancelled job task_id=%s job_id=%s", task_id, job_id_for(task_id))


def discard_jobs(*, task_ids: list[int], queue_name: str) -> int:
    """Remove the waiting jobs of tasks that another job has claimed and is sending (in its slices).

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


@dataclass(frozen=True)
class JobInfo:
    """What Redis holds for one task's job: its status and queue (None: no job), its scheduled time."""

    status: str | None
    origin: str | None
    scheduled_at: float | None  # score in a ScheduledJobRegistry (epoch seconds), None if not scheduled


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


def requeue(*, task_id: int, queue_name: str = SEND_QUEUE, due: datetime | None = None, retries_used: int = 0) -> None:
    """Replace the task's job, whatever RQ thinks of it (started by a dead worker, failed), by a fresh queued one.

    With ``due`` the fresh job is scheduled for then instead (a back-off); ``retries_used`` shortens its
    retry policy by the attempts already made, as in schedule().
    """
    _delete(task_id)
    queue = _queue(queue_name)
    job = _new_job(queue, task_id, retries_used)
    try:
        if due is None:
            queue.enqueue_job(job, unique=True)
        else:
            queue.schedule_job(job, release_time(due), unique=True)
    except DuplicateJobError:
        logger.info("job re-created meanwhile, leaving it task_id=%s", task_id)
        return
    logger.info("requeued task_id=%s job_id=%s queue=%s due=%s", task_id, job_id_for(task_id), queue_name, due)
