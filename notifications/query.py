"""The poll's query parameter ``since``, read the same way by both poll doors (page and API)."""

from __future__ import annotations

import math

from django.utils.translation import gettext as _

MAX_SINCE_LENGTH = 64  # characters; a timestamp needs about 20


def parse_since(raw: str | None) -> float:
    """Return ``since`` as seconds since the epoch: absent is 0; a finite number >= 0 is itself.

    Raises ValueError (its message is the answer to show) for anything else: blank, not a number,
    NaN, infinities, a value that overflows to infinity (1e309), a negative number.
    """
    if raw is None:
        return 0.0
    if raw == "":
        raise ValueError(_("This field may not be blank."))  # as the API's query serializers answer
    message = _("since must be a number of seconds since the epoch, 0 or more.")
    if len(raw) > MAX_SINCE_LENGTH:
        raise ValueError(message)
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(message) from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(message)
    return value
