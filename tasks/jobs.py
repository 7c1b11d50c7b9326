"""Functions the RQ worker runs. Arguments are ids only; the row holds everything else."""

from django.db import close_old_connections, connection

from tasks.delivery import run_task


def send_task(task_id: int) -> None:
    """Send the mail of task ``task_id`` and whatever else is due (tasks.delivery.run.run_task)."""
    if not connection.in_atomic_block:
        # The worker does not fork, so connections live across jobs: drop ones the server closed.
        close_old_connections()
    run_task(task_id=task_id)
