"""The task service layer: every door (form, admin, API) calls these, none talks to RQ.

The worker side (claim, send, settle) is tasks.delivery; both write status only through tasks.transitions."""

from tasks.services.change import Canceled, cancel_reserve, cancel_task, reschedule, reschedule_task, send_now
from tasks.services.create import enqueue_task, reserve_task, retry_task
from tasks.services.edit import ReservationChanges, edit_reservation
from tasks.services.idempotency import run_idempotent
from tasks.services.reconcile import ReconcileReport, reconcile_tasks
from tasks.services.submit import ensure_send_quota, submit_send

__all__ = [
    "Canceled",
    "ReconcileReport",
    "ReservationChanges",
    "cancel_reserve",
    "cancel_task",
    "edit_reservation",
    "enqueue_task",
    "ensure_send_quota",
    "reconcile_tasks",
    "reschedule",
    "reschedule_task",
    "reserve_task",
    "retry_task",
    "run_idempotent",
    "send_now",
    "submit_send",
]
