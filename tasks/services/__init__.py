"""The task service layer: every door (form, admin, API, jobs) calls these, none talks to RQ."""

from tasks.services.change import cancel_reserve, cancel_task, reschedule, reschedule_task, send_now
from tasks.services.create import enqueue_task, reserve_task, retry_task
from tasks.services.reconcile import ReconcileReport, mark_missed, reconcile_tasks
from tasks.services.run import claim_task, run_task

__all__ = [
    "ReconcileReport",
    "cancel_reserve",
    "cancel_task",
    "claim_task",
    "enqueue_task",
    "mark_missed",
    "reconcile_tasks",
    "reschedule",
    "reschedule_task",
    "reserve_task",
    "retry_task",
    "run_task",
    "send_now",
]
