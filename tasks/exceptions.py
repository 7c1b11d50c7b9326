"""Errors raised by the task services; interfaces show their messages as they are."""

from reservemail.exceptions import ReservemailError


class ReservationError(ReservemailError):
    """The input of a send, reservation or reschedule is invalid (HTTP 400)."""

    code = "invalid"
    status = 400


class TaskStateError(ReservemailError):
    """The task is not in a state that allows the operation (HTTP 409)."""

    code = "conflict"
    status = 409


class QueueUnavailableError(ReservemailError):
    """Redis could not be reached; the task row records it (HTTP 503)."""

    code = "queue_unavailable"
    status = 503


class TaskNotFoundError(ReservemailError):
    """No task with this id belongs to the user (HTTP 404); another user's task looks the same."""

    code = "not_found"
    status = 404

    def __init__(self, task_id: object) -> None:
        from django.utils.translation import gettext

        super().__init__(gettext("Task #%(id)s was not found.") % {"id": task_id})
