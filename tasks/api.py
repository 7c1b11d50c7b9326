"""The REST door to the task services: parse, call one service, render. No queue, no transactions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import QueryDict
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle

from reservemail.api_schema import RequiredPatchBodySchema, api_responses
from reservemail.authentication import API_AUTHENTICATION
from reservemail.http import signed_in
from reservemail.parsers import SafeJSONParser
from tasks import services
from tasks.compose_schema import PREVIEW_SCHEMA, testmail_schema
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.selectors import list_tasks_of, with_context_text
from tasks.serializers import (
    ErrorSerializer,
    PreviewOutputSerializer,
    TaskCancelOutputSerializer,
    TaskCreateInputSerializer,
    TaskDetailOutputSerializer,
    TaskEditInputSerializer,
    TaskListQuerySerializer,
    TaskOutputSerializer,
    TaskPreviewInputSerializer,
    TaskTestInputSerializer,
)
from tasks.services.change import raise_state

Handler = Callable[..., tuple[int, Any]]


class TaskCreateThrottle(UserRateThrottle):
    """Per-user rate of creates; read from settings.API_CREATE_RATE on every request."""

    scope = "task_create"

    def get_rate(self) -> str | None:
        return settings.API_CREATE_RATE or None


class TaskPagination(PageNumberPagination):
    """DRF's page numbers, except that ``?page=`` (blank) is an error rather than page 1."""

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        if request.query_params.get(self.page_query_param) == "":
            raise ValidationError({self.page_query_param: ["This field may not be blank."]})
        return super().get_page_number(request, paginator)


def request_fingerprint(request: Request) -> str:
    """A hash of what the request asks for: method, path and its parsed body (key order ignored)."""
    data = request.data
    if isinstance(data, QueryDict):
        data = dict(data.lists())
    body = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def idempotent(handler: Handler) -> Callable[..., Response]:
    """Make a POST action honour an ``Idempotency-Key`` header (see services.run_idempotent)."""

    @wraps(handler)
    def view(self: viewsets.GenericViewSet, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            status, body = handler(self, request, *args, **kwargs)
            return Response(body, status=status)
        outcome = services.run_idempotent(
            user=signed_in(request),
            key=key,
            fingerprint=request_fingerprint(request),
            handler=lambda: handler(self, request, *args, **kwargs),
        )
        response = Response(outcome.body, status=outcome.status)
        if outcome.replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    return view


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


IDEMPOTENCY_HEADER = OpenApiParameter(
    name="Idempotency-Key",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    pattern=r"^[\x21-\x7e]{1,255}$",
    description="Repeat a POST safely: the same key from the same user within 24 h returns the first "
    "response (header Idempotent-Replayed: true) and changes nothing. The same key with a different "
    "request is refused with 422.",
)
CANCEL_BAD_KEY = OpenApiResponse(
    ErrorSerializer,
    description="The Idempotency-Key header is empty, too long or not visible ASCII.",
    examples=[
        OpenApiExample(
            "Bad key",
            response_only=True,
            value={
                "detail": "The Idempotency-Key header must be 1 to 255 visible ASCII characters.",
                "code": "invalid_idempotency_key",
            },
        )
    ],
)
TASK_EXAMPLE = {
    "id": 42,
    "description": "June newsletter",
    "template": "newsletter",
    "recipients": ["alice@example.com", "bob@example.com"],
    "context": {"name": "Readers"},
    "status": "reserved",
    "failed": False,
    "progress": 0,
    "attempts": 0,
    "queue": "high",
    "reserved_at": "2026-06-01T09:00:00+09:00",
    "created_at": "2026-05-20T14:03:11.402113+09:00",
    "started_at": None,
    "ended_at": None,
    "is_test": False,
}


@extend_schema_view(
    list=extend_schema(
        summary="List your tasks, newest first",
        **api_responses(
            {200: TaskOutputSerializer(many=True)}, errors=[400, 401, 404], parameters=[TaskListQuerySerializer]
        ),
    ),
    retrieve=extend_schema(
        summary="One of your tasks, with its log and per-recipient outcomes",
        **api_responses({200: TaskDetailOutputSerializer}, errors=[401, 404]),
    ),
)
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The signed-in user's sends. Another user's task answers 404, as if it did not exist."""

    authentication_classes = API_AUTHENTICATION
    serializer_class = TaskOutputSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    schema = RequiredPatchBodySchema()
    parser_classes = [SafeJSONParser]
    pagination_class = TaskPagination

    def get_queryset(self) -> QuerySet[Task]:
        queryset = with_context_text(list_tasks_of(self.request.user))  # an old row's context may be too deep
        if self.action == "retrieve":
            return queryset.prefetch_related("deliveries")
        return queryset

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return TaskDetailOutputSerializer if self.action == "retrieve" else TaskOutputSerializer

    def get_throttles(self) -> list[Any]:
        if self.action in ("create", "test"):
            return [TaskCreateThrottle()]
        return super().get_throttles()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        query = _valid(TaskListQuerySerializer, request.query_params)
        queryset = self.get_queryset()
        if query.get("status"):
            queryset = queryset.filter(status=query["status"])
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(TaskOutputSerializer(page, many=True).data)

    @extend_schema(
        summary="Send now, or reserve for later",
        description="Without `scheduled_at` the mail is queued at once (status `queued`); with it the mail is "
        "reserved for that time (status `reserved`). Past API_DAILY_SEND_QUOTA sends in 24 hours the answer is "
        "429 with code `daily_quota_exceeded` and Retry-After; past API_CREATE_RATE it is 429 `throttled`.",
        request=TaskCreateInputSerializer,
        **api_responses(
            {201: TaskOutputSerializer},
            errors=[400, 401, 403, 415, 422, 429, 503],
            idempotent=True,
            parameters=[IDEMPOTENCY_HEADER],
        ),
        examples=[
            OpenApiExample(
                "Send now",
                request_only=True,
                value={
                    "template": "welcome",
                    "recipients": ["alice@example.com"],
                    "context": {"name": "Alice"},
                    "description": "Welcome Alice",
                },
            ),
            OpenApiExample(
                "Reserve",
                request_only=True,
                value={
                    "template": "newsletter",
                    "recipients": ["alice@example.com", "bob@example.com"],
                    "context": {"name": "Readers"},
                    "description": "June newsletter",
                    "scheduled_at": "2026-06-01T09:00:00+09:00",
                },
            ),
            OpenApiExample("Reserved", response_only=True, status_codes=["201"], value=TASK_EXAMPLE),
        ],
    )
    @idempotent
    def create(self, request: Request) -> tuple[int, Any]:
        data = _valid(TaskCreateInputSerializer, request.data)
        mail = MailSpec(template=data["template"], recipients=tuple(data["recipients"]), context=data["context"])
        task = services.submit_send(
            owner=signed_in(request), mail=mail, description=data["description"], scheduled_at=data.get("scheduled_at")
        )
        return 201, TaskOutputSerializer(task).data

    @extend_schema(
        summary="Edit a reservation",
        description="Change any of `recipients`, `template`, `context`, `description` and `scheduled_at` (at least "
        "one; fields as when creating, checked the same way) while the task is `reserved`. Parts not sent stay as "
        "they are; a changed time moves the send. Once the task is `running` or ended the answer is 409 and "
        "nothing changes: the edit and the worker's start are ordered, so an accepted edit is what goes out.",
        request=TaskEditInputSerializer,
        **api_responses({200: TaskOutputSerializer}, errors=[400, 401, 403, 404, 409, 415]),
        examples=[
            OpenApiExample("Move", request_only=True, value={"scheduled_at": "2026-06-02T09:00:00+09:00"}),
            OpenApiExample(
                "Fix the content",
                request_only=True,
                value={"context": {"name": "Readers of the June issue"}, "description": "June newsletter (fixed)"},
            ),
            OpenApiExample(
                "Edited",
                response_only=True,
                status_codes=["200"],
                value={**TASK_EXAMPLE, "reserved_at": "2026-06-02T09:00:00+09:00"},
            ),
            OpenApiExample(
                "Already running",
                response_only=True,
                status_codes=["409"],
                value={
                    "detail": "Task #42 is already being sent and can no longer be changed.",
                    "code": "task_running",
                },
            ),
        ],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task = self.get_object()
        changes = services.ReservationChanges(**_valid(TaskEditInputSerializer, request.data))
        task = services.edit_reservation(owner=signed_in(request), task_id=task.pk, changes=changes)
        return Response(TaskOutputSerializer(task).data)

    @extend_schema(
        summary="Cancel a reservation or stop a running send",
        description="A `queued` or `reserved` task is canceled before anything is sent; a `running` one is "
        "stopped: once the answer arrives no further recipient is handed to the mail server, and `detail` says "
        "how many already were (`stopped: 3 of 10 sent`). 409 when every recipient was already sent "
        "(`task_already_sent`) or the task already ended, a second cancel included (`task_canceled`).",
        request=None,
        **api_responses(
            {200: TaskCancelOutputSerializer},
            errors=[400, 401, 403, 404, 409, 415, 422],
            idempotent=True,
            overrides={400: CANCEL_BAD_KEY},
            parameters=[IDEMPOTENCY_HEADER],
        ),
        examples=[
            OpenApiExample(
                "Canceled",
                response_only=True,
                status_codes=["200"],
                value={
                    **TASK_EXAMPLE,
                    "status": "canceled",
                    "ended_at": "2026-05-20T14:05:00.120931+09:00",
                    "detail": "Mail #42 canceled; nothing was sent.",
                },
            ),
            OpenApiExample(
                "Already finished",
                response_only=True,
                status_codes=["409"],
                value={"detail": "Task #42 has already finished.", "code": "task_finished"},
            ),
        ],
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request: Request, pk: str | None = None) -> tuple[int, Any]:
        task = self.get_object()
        if task.is_ended:
            raise_state(task, "cancel")
        outcome = services.cancel_task(owner=signed_in(request), task_id=task.pk)
        return 200, {**TaskOutputSerializer(outcome.task).data, "detail": outcome.message}

    @extend_schema(**PREVIEW_SCHEMA)
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        data = _valid(TaskPreviewInputSerializer, request.data)
        mail = MailSpec(template=data["template"], recipients=tuple(data["recipients"]), context=data["context"])
        preview = services.preview_mail(mail=mail, recipient=data.get("recipient"))
        return Response(PreviewOutputSerializer(preview).data)

    @extend_schema(**testmail_schema(parameters=[IDEMPOTENCY_HEADER]))
    @action(detail=False, methods=["post"])
    @idempotent
    def test(self, request: Request) -> tuple[int, Any]:
        data = _valid(TaskTestInputSerializer, request.data)
        mail = MailSpec(template=data["template"], recipients=tuple(data["recipients"]), context=data["context"])
        task = services.send_test(
            owner=signed_in(request),
            mail=mail,
            recipient=data.get("recipient"),
            description=data.get("description", ""),
        )
        return 201, TaskOutputSerializer(task).data
