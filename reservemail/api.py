"""The API's router and its one exception handler (domain errors -> 400/404/409/503)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from reservemail.exceptions import ReservemailError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map ReservemailError to its status with ``{"detail", "code"}`` (plus the field error for 400)."""
    if isinstance(exc, ReservemailError):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        if exc.field and exc.status == status.HTTP_400_BAD_REQUEST:
            body[exc.field] = [exc.message]
        return Response(body, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response({**detail, "detail": "; ".join(exc.messages), "code": "invalid"}, status=400)
    return drf_exception_handler(exc, context)
