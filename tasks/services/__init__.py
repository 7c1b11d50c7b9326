"""The task service layer: every door (form, admin, API, jobs) calls these, none talks to RQ."""

from tasks.services.change import cancel_reserve, cancel_task, reschedule, reschedule_task, send_now
from tasks.services.create import enqueue_task, reserve_task, retry_task
from tasks.services.idempotency import run_idempotent
from tasks.services.reconcile import ReconcileReport, mark_missed, reconcile_tasks
from tasks.services.run import claim_task, run_task
from tasks.services.submit import ensure_send_quota, submit_send

__all__ = [
    "ReconcileReport",
    "cancel_reserve",
    "cancel_task",
    "claim_task",
    "enqueue_task",
    "ensure_send_quota",
    "mark_missed",
    "reconcile_tasks",
    "reschedule",
    "reschedule_task",
    "reserve_task",
    "retry_task",
    "run_idempotent",
    "run_task",
    "send_now",
    "submit_send",
]
