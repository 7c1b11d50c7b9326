"""Errors of recurring sends; interfaces show their messages as they are."""

from reservemail.exceptions import ReservemailError


class RuleError(ReservemailError):
    """A recurrence rule, zone or start the series cannot use (HTTP 400)."""

    code = "invalid_rule"
    status = 400


class SeriesStateError(ReservemailError):
    """The series is not in a state that allows the operation (HTTP 409)."""

    code = "series_conflict"
    status = 409


class SeriesNotFoundError(ReservemailError):
    """No series with this id belongs to the user (HTTP 404)."""

    code = "not_found"
    status = 404
