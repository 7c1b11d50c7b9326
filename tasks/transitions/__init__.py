"""The only writer of ``Task.status``: one function per transition.

Each transition is one conditional update (``filter(pk=..., status__in=sources).update(...)``) or
a locked read-check-write, whose source states must be allowed by the live table
``tasks.models.TRANSITIONS`` (checked on every call). While a task is RUNNING its writes are fenced
by the attempt number, so a worker that was frozen or cut off and taken over matches no row.
Every transition writes its log line, its log record and its notification (finish_many may hand
its end notices to the send loop, which writes them with its next beat). A result of 0 rows
means someone else moved the task first: the function returns False, it never retries.

Transitions that take a task away from a sending worker (stop, hand back, recover) also close its
open deliveries in the same transaction, because the worker's per-recipient ownership check
(tasks.delivery.records.mark_sending) is ordered against those rows.

The modules: table (the table check, the conditional update and its helpers), claims, ends (of an
attempt: finish, fail, hand back, stop), doors (cancel, refuse, send now, edit, reschedule) and
reconcile (recover, mark missed). Callers use ``tasks.transitions.X``.
"""

from tasks.transitions.claims import claim_due, claim_own
from tasks.transitions.doors import cancel_pending, edit_reserved, refuse, reschedule, send_now
from tasks.transitions.ends import Stopped, TaskEnd, fail, finish_many, hand_back, stop
from tasks.transitions.reconcile import mark_missed, recover
from tasks.transitions.table import _allowed as _allowed  # for the table test
from tasks.transitions.table import append_log, note

__all__ = [
    "Stopped",
    "TaskEnd",
    "append_log",
    "cancel_pending",
    "claim_due",
    "claim_own",
    "edit_reserved",
    "fail",
    "finish_many",
    "hand_back",
    "mark_missed",
    "note",
    "recover",
    "refuse",
    "reschedule",
    "send_now",
    "stop",
]
