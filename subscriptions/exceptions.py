"""The suppression list's domain errors."""

from __future__ import annotations

from reservemail.exceptions import ReservemailError


class SuppressionError(ReservemailError):
    """An address or list name that cannot be suppressed as given (HTTP 400)."""

    code = "invalid"
    status = 400
