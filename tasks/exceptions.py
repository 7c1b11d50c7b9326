"""Errors raised by the task services; interfaces show their messages as they are."""

from django.utils.translation import gettext as _

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
    """Redis could not be reached; the task row records it (HTTP 503, with ``Retry-After``).

    ``retry_after``: seconds a client should wait before trying again; a restarted or failed-over
    Redis (Sentinel) is usually back well within it.
    """

    code = "queue_unavailable"
    status = 503
    retry_after = 30


class TaskNotFoundError(ReservemailError):
    """No task with this id belongs to the user (HTTP 404); another user's task looks the same."""

    code = "not_found"
    status = 404

    def __init__(self, task_id: object) -> None:
        super().__init__(_("Task #%(id)s was not found.") % {"id": task_id})


class QuotaExceededError(ReservemailError):
    """The user has created as many sends as API_DAILY_SEND_QUOTA allows in 24 hours (HTTP 429).

    ``retry_after`` is the number of seconds until the oldest send in the window ages out.
    """

    code = "daily_quota_exceeded"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IdempotencyKeyError(ReservemailError):
    """An Idempotency-Key was first used for a different request (HTTP 422)."""

    code = "idempotency_key_reused"
    status = 422


class InvalidIdempotencyKeyError(ReservemailError):
    """The Idempotency-Key header is empty, too long or not visible ASCII (HTTP 400)."""

    code = "invalid_idempotency_key"
    status = 400


def unreadable_context(task_id: int) -> ReservationError:
    """The error for a task whose stored context (saved before the input limits) cannot be read back safely."""
    message = _(
        "The stored context of mail #%(id)s cannot be read: it was saved before the current input limits. "
        "Give a new context, or create a new mail."
    )
    return ReservationError(message % {"id": task_id}, code="context_unreadable", field="context")
