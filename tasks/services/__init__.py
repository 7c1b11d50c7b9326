"""The task service layer: every door (form, admin, API) calls these, none talks to RQ.

The worker side (claim, send, settle) is tasks.delivery; both write status only through tasks.transitions."""

from tasks.services.change import Canceled, cancel_reserve, cancel_task, reschedule, reschedule_task, send_now
from tasks.services.create import enqueue_task, reserve_task, retry_task
from tasks.services.edit import ReservationChanges, edit_reservation
from tasks.services.idempotency import Outcome, run_idempotent
from tasks.services.preview import Preview, preview_mail, render_delivery
from tasks.services.reconcile import ReconcileReport, reconcile_tasks
from tasks.services.submit import ensure_send_quota, submit_send
from tasks.services.testmail import send_test

__all__ = [
    "Canceled",
    "Outcome",
    "Preview",
    "ReconcileReport",
    "ReservationChanges",
    "cancel_reserve",
    "cancel_task",
    "edit_reservation",
    "enqueue_task",
    "ensure_send_quota",
    "preview_mail",
    "reconcile_tasks",
    "render_delivery",
    "reschedule",
    "reschedule_task",
    "reserve_task",
    "retry_task",
    "run_idempotent",
    "send_now",
    "send_test",
    "submit_send",
]
