"""What every API operation documents besides its success: error statuses with their bodies, response headers.

One place, so each view names only the statuses it can answer (``api_responses(201, ..., errors=[400, 401])``)
and gets the same error bodies, examples and headers as every other. Error bodies are the exception handler's
(reservemail.api.exception_handler): ``{"detail", "code"}``, or DRF's field errors for invalid input.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.template.response import SimpleTemplateResponse
from django.utils import translation
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from tasks.serializers import ErrorSerializer

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema


class FieldErrorsSerializer(serializers.Serializer):
    """Invalid input (400): DRF's field errors, with ``detail`` and ``code`` when a service refused a value."""


class FieldErrorsScheme(OpenApiSerializerExtension):
    """FieldErrors as JSON Schema: ``{field: [messages]}`` for any field, plus optional ``detail`` and ``code``."""

    target_class = FieldErrorsSerializer

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "description": "Field errors: each invalid field (or `non_field_errors`) with a list of messages; an "
            "item of a list field is keyed by its index. `detail` and `code` are present when a service refused "
            "the value.",
            "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
            "additionalProperties": {
                "anyOf": [
                    {"type": "array", "items": {"type": "string"}},
                    {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
                ]
            },
        }


class AtLeastOneFieldScheme(OpenApiSerializerExtension):
    """A PATCH body (every field optional): at least one property, and no property it does not list."""

    target_class = "tasks.serializers.TaskEditInputSerializer"

    def map_serializer(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_basic_serializer(self.target, direction)
        return {**schema, "minProperties": 1, "additionalProperties": False}


class RequiredPatchBodySchema(BaseAutoSchema):
    """drf-spectacular marks a body required only when it has a required property; a PATCH body with every field
    optional is still required (an empty one is refused), so say so."""

    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        body = super()._get_request_body(direction)
        if body is not None and self.method == "PATCH":
            body["required"] = True
        return body


def _error(description: str, detail: str, code: str) -> OpenApiResponse:
    return OpenApiResponse(
        ErrorSerializer,
        description=description,
        examples=[OpenApiExample(code, value={"detail": detail, "code": code}, response_only=True)],
    )


# What each status means on this API, with a body from the server.
ERRORS: dict[int, OpenApiResponse] = {
    400: OpenApiResponse(
        FieldErrorsSerializer,
        description="Invalid input: field errors (`{field: [messages]}`), plus `detail` and `code` when a service "
        "refused the value.",
        examples=[
            OpenApiExample(
                "Invalid",
                value={
                    "detail": "The reservation time must be at least 60 seconds in the future.",
                    "code": "invalid",
                    "scheduled_at": ["The reservation time must be at least 60 seconds in the future."],
                },
                response_only=True,
            ),
            OpenApiExample(
                "InvalidRecipient",
                summary="A refused recipient, keyed by its position in the list",
                description="Each refused recipient, a string or an object, is keyed by its index (from 0) in "
                "`recipients`; errors about the list as a whole (empty, too many) are a plain list.",
                value={"recipients": {"2": ["“a@b” is not a valid e-mail address."]}},
                response_only=True,
            ),
        ],
    ),
    401: _error(
        "No or invalid credentials: send `Authorization: Bearer <token>` (or `Token <token>`), or sign in for a "
        "session. `WWW-Authenticate` names the scheme.",
        "Authentication credentials were not provided.",
        "not_authenticated",
    ),
    403: _error(
        "Signed in with a session cookie but without the CSRF token: a session write needs the `X-CSRFToken` "
        "header with the value of the `csrftoken` cookie. Token and bearer requests need none.",
        "CSRF Failed: CSRF token missing.",
        "permission_denied",
    ),
    404: _error(
        "No such task among yours (another user's task looks the same), or no such page.", "Not found.", "not_found"
    ),
    409: _error(
        "The task's state does not allow this (already running, ended, canceled).",
        "Task #42 has already finished.",
        "task_finished",
    ),
    413: _error(
        "The request body is larger than the server accepts (`DATA_UPLOAD_MAX_MEMORY_SIZE`, 2.5 MB by default); "
        "nothing was done.",
        "Request body exceeded settings.DATA_UPLOAD_MAX_MEMORY_SIZE.",
        "request_too_large",
    ),
    415: _error(
        "The body is not `application/json`.",
        'Unsupported media type "text/plain" in request.',
        "unsupported_media_type",
    ),
    422: _error(
        "The Idempotency-Key was first used for a different request.",
        "This Idempotency-Key was already used for a different request; use a new key for a new request.",
        "idempotency_key_reused",
    ),
    429: _error(
        "Too many requests; `Retry-After` says how many seconds to wait.",
        "Request was throttled. Expected available in 42 seconds.",
        "throttled",
    ),
    503: _error(
        "The queue (Redis) could not be reached; the send was refused and nothing will be sent. Try again after "
        "`Retry-After` seconds.",
        "The mail queue is not reachable right now; nothing was sent. Please try again shortly.",
        "queue_unavailable",
    ),
}


def _header(name: str, statuses: list[int], description: str, type_: type = str) -> OpenApiParameter:
    return OpenApiParameter(
        name=name, type=type_, location=OpenApiParameter.HEADER, response=statuses, description=description
    )


def api_responses(
    ok: dict[int, Any],
    *,
    errors: Iterable[int],
    idempotent: bool = False,
    server_time: bool = False,
    overrides: dict[int, Any] | None = None,
    parameters: Iterable[Any] = (),
) -> dict[str, Any]:
    """``extend_schema`` keyword arguments: ``ok`` and the listed error statuses, and the headers they set.

    ``idempotent``: the success may carry ``Idempotent-Replayed``. ``server_time``: the success carries
    ``X-Server-Time``. ``overrides`` replace the shared response of a status (a more precise body or text).
    ``parameters`` are the operation's own (query, request headers); the response headers follow them.
    An operation that reads a body (it lists 415) also answers 413 for one over the size limit
    (reservemail.api.exception_handler), so 413 is added with it.
    """
    listed = set(errors)
    errors = sorted(listed | {413} if 415 in listed else listed)
    responses: dict[int, Any] = {**ok, **{code: ERRORS[code] for code in errors}, **(overrides or {})}
    headers = list(parameters)
    if 401 in errors:
        headers.append(_header("WWW-Authenticate", [401], "`Token`: the scheme to authenticate with."))
    retry: list[int] = [code for code in (429, 503) if code in errors]
    if retry:
        headers.append(_header("Retry-After", retry, "Seconds to wait before trying again.", int))
    if idempotent:
        headers.append(
            _header(
                "Idempotent-Replayed",
                list(ok),
                "`true` when this is the stored answer to an earlier request "
                "with the same Idempotency-Key; absent otherwise.",
            )
        )
    if server_time:
        headers.append(
            _header(
                "X-Server-Time", list(ok), "The server's clock (seconds since the epoch): pass it as `since` next time."
            )
        )
    return {"responses": responses, "parameters": headers}


class EnglishSchemaView(SpectacularAPIView):
    """The OpenAPI document, always in English: generated clients carry its text, whatever the UI's language."""

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if "lang" in request.GET:  # drf-spectacular's ?lang= would give text in two languages
            query = request.GET.copy()
            del query["lang"]
            request.GET = query  # type: ignore[assignment]
        with translation.override("en"):
            response = super().dispatch(request, *args, **kwargs)
            if isinstance(response, SimpleTemplateResponse):
                response.render()  # the schema holds lazy text: render it while English is active
        return response
