"""What a worker does with due work: claim slices under a lease, send them with a per-recipient
ownership check, settle each task (policy, claim, records, send, run)."""

from tasks.delivery.run import finish_settled, run_task
from tasks.delivery.send import TransientSendError

__all__ = ["TransientSendError", "finish_settled", "run_task"]
