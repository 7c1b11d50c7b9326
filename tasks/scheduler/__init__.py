"""The only package that talks to RQ. It takes task ids and aware datetimes, never models.

Every job's id is derived from its task's primary key (``job_id_for``), so cancel, reschedule and
the reconciler find a task's job from the id alone, and a second job for the same task is refused
(``unique=True``) instead of silently overwriting the first.

Modules: ``connection`` (queue names, the Redis client, release timing), ``jobs`` (one task's
job, and helper jobs for a big task), ``status`` (locks, counts, health, stats). Callers import
this package, which re-exports their API. It imports no models and nothing of the services: the
worker classes that call back into the delivery pipeline live in tasks.worker.
"""

from tasks.scheduler.connection import (
    JOB_FUNC,
    QUEUE_NAMES,
    SCHEDULER_QUEUE,
    SEND_QUEUE,
    JobState,
    QueueError,
    job_id_for,
    ping,
    release_time,
    round_up_to_second,
)
from tasks.scheduler.jobs import (
    JobInfo,
    cancel,
    discard_jobs,
    due_time,
    enqueue,
    enqueue_helpers,
    inspect_jobs,
    is_waiting_in_queue,
    job_state,
    release_overdue,
    requeue,
    reschedule,
    retries_left,
    schedule,
    stop,
)
from tasks.scheduler.status import (
    break_dead_scheduler_locks,
    clear_relay_refused,
    eviction_policy,
    queue_stats,
    record_relay_refused,
    relay_refusal,
    scheduler_lock_holder,
    scheduler_status,
    take_lock,
    warn_if_evicting,
    worker_count,
    worker_counts,
    workers_on_this_host,
)

__all__ = [
    "JOB_FUNC",
    "JobInfo",
    "JobState",
    "QUEUE_NAMES",
    "QueueError",
    "SCHEDULER_QUEUE",
    "SEND_QUEUE",
    "break_dead_scheduler_locks",
    "cancel",
    "clear_relay_refused",
    "discard_jobs",
    "due_time",
    "enqueue",
    "enqueue_helpers",
    "eviction_policy",
    "inspect_jobs",
    "is_waiting_in_queue",
    "job_id_for",
    "job_state",
    "ping",
    "queue_stats",
    "record_relay_refused",
    "relay_refusal",
    "release_overdue",
    "release_time",
    "requeue",
    "reschedule",
    "retries_left",
    "round_up_to_second",
    "schedule",
    "scheduler_lock_holder",
    "scheduler_status",
    "stop",
    "take_lock",
    "warn_if_evicting",
    "worker_count",
    "worker_counts",
    "workers_on_this_host",
]
