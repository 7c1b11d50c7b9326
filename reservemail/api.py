"""The API's router and its one exception handler (domain errors -> 400/404/409/503)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from reservemail.exceptions import ReservemailError


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Map ReservemailError to its status with ``{"detail", "code"}`` (plus the field error for 400)."""
    if isinstance(exc, ReservemailError):
        body: dict[str, Any] = {"detail": exc.message, "code": exc.code}
        if exc.field and exc.status == status.HTTP_400_BAD_REQUEST:
            body[exc.field] = [exc.message]
        retry_after = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return Response(body, status=exc.status, headers=headers)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Response({**detail, "detail": "; ".join(exc.messages), "code": "invalid"}, status=400)
    if isinstance(exc, SuspiciousOperation):
        # Raised while parsing a body (too big, too many fields): Django would answer with HTML.
        too_big = isinstance(exc, RequestDataTooBig)
        return Response(
            {"detail": str(exc) or "Bad request.", "code": "request_too_large" if too_big else "bad_request"},
            status=413 if too_big else 400,
        )
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        # DRF's own errors (401, 404, 405, 429, ...) get the same {"detail", "code"} body.
        response.data.setdefault("code", getattr(response.data["detail"], "code", "error"))
    return response


class TokenLoginView(ObtainAuthToken):
    """POST username and password, get the user's API token (created on first use)."""

    @extend_schema(
        summary="Get your API token",
        responses={
            200: inline_serializer("TokenOutput", {"token": serializers.CharField()}),
            400: OpenApiResponse(OpenApiTypes.OBJECT, description="Missing fields or wrong credentials."),
        },
    )
    def post(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        return super().post(request, *args, **kwargs)


@csrf_exempt  # it changes nothing; without this an unknown POST would get the HTML CSRF page
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other path under /api/: a JSON 404, like the API's own, not Django's HTML page."""
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
