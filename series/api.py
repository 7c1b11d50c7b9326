"""The REST door to the series services: parse, call one service, render. No queue, no transactions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from reservemail.api_schema import api_responses
from reservemail.authentication import API_AUTHENTICATION
from reservemail.http import signed_in
from reservemail.parsers import SafeJSONParser
from series import services
from series.models import Series
from series.selectors import list_series_of
from series.serializers import (
    SeriesActionOutputSerializer,
    SeriesChangeInputSerializer,
    SeriesCreateInputSerializer,
    SeriesOutputSerializer,
)
from tasks.api import TaskCreateThrottle, TaskPagination
from tasks.mail import MailSpec

SERIES_EXAMPLE = {
    "id": 7,
    "description": "Weekly report",
    "template": "newsletter",
    "recipients": ["team@example.com"],
    "context": {"name": "Team"},
    "rule": "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0;COUNT=10",
    "zone": "Asia/Seoul",
    "summary": "Every Monday and Thursday at 09:00, Asia/Seoul, 10 times",
    "start_at": "2026-06-01T00:00:00+09:00",
    "status": "active",
    "next_at": "2026-06-01T09:00:00+09:00",
    "created_count": 1,
    "created_at": "2026-05-20T14:03:11.402113+09:00",
    "log": "2026-05-20T05:03:11+0000 occurrence 1 reserved: task #42 at 2026-06-01T09:00:00+09:00\n",
}


def _valid(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _control(summary: str, description: str) -> Callable[[Any], Any]:
    return extend_schema(
        summary=summary,
        description=description,
        request=None,
        **api_responses({200: SeriesActionOutputSerializer}, errors=[401, 403, 404, 409]),
    )


@extend_schema_view(
    list=extend_schema(
        summary="List your series, newest first",
        **api_responses({200: SeriesOutputSerializer(many=True)}, errors=[400, 401, 404]),
    ),
    retrieve=extend_schema(
        summary="One of your series", **api_responses({200: SeriesOutputSerializer}, errors=[401, 404])
    ),
)
class SeriesViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The signed-in user's recurring mail. Another user's series answers 404. Its occurrences are tasks."""

    authentication_classes = API_AUTHENTICATION
    serializer_class = SeriesOutputSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    parser_classes = [SafeJSONParser]
    pagination_class = TaskPagination

    def get_queryset(self) -> QuerySet[Series]:
        return list_series_of(self.request.user)

    def get_throttles(self) -> list[Any]:
        return [TaskCreateThrottle()] if self.action == "create" else super().get_throttles()

    @extend_schema(
        summary="Create a series: the same mail again and again by a rule",
        description="The first occurrence is reserved at once, as a task; each following one when the one before "
        "is being sent. Each occurrence counts towards API_DAILY_SEND_QUOTA.",
        request=SeriesCreateInputSerializer,
        **api_responses({201: SeriesOutputSerializer}, errors=[400, 401, 403, 415, 429]),
        examples=[
            OpenApiExample(
                "Weekly",
                request_only=True,
                value={
                    "template": "newsletter",
                    "recipients": ["team@example.com"],
                    "context": {"name": "Team"},
                    "description": "Weekly report",
                    "rule": "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0;COUNT=10",
                    "zone": "Asia/Seoul",
                },
            ),
            OpenApiExample("Created", response_only=True, status_codes=["201"], value=SERIES_EXAMPLE),
        ],
    )
    def create(self, request: Request) -> Response:
        data = _valid(SeriesCreateInputSerializer, request.data)
        mail = MailSpec(template=data["template"], recipients=tuple(data["recipients"]), context=data["context"])
        series = services.create_series(
            owner=signed_in(request),
            mail=mail,
            description=data["description"],
            rule=data["rule"],
            zone=data.get("zone") or timezone.get_current_timezone_name(),
            start_at=data.get("start_at") or timezone.now(),
        )
        return Response(SeriesOutputSerializer(series).data, status=201)

    @extend_schema(
        summary="Change the rule, zone, start or description",
        description="The next occurrence is computed again and reserved with the same checks as a reservation.",
        request=SeriesChangeInputSerializer,
        **api_responses({200: SeriesOutputSerializer}, errors=[400, 401, 403, 404, 409, 415]),
        examples=[OpenApiExample("Later", request_only=True, value={"rule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=10"})],
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        series = self.get_object()
        data = _valid(SeriesChangeInputSerializer, request.data)
        series = services.change_series(owner=signed_in(request), series_id=series.pk, **data)
        return Response(SeriesOutputSerializer(series).data)

    def _act(self, request: Request, service: Callable[..., services.Outcome]) -> Response:
        outcome = service(owner=signed_in(request), series_id=self.get_object().pk)
        return Response({**SeriesOutputSerializer(outcome.series).data, "detail": outcome.message})

    @_control("Pause a series", "Its reserved occurrence is canceled; nothing is sent until it is resumed.")
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, services.pause_series)

    @_control("Resume a paused series", "The next future occurrence is reserved; the skipped ones are not sent.")
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, services.resume_series)

    @_control("Skip the next occurrence", "It is canceled and the one after it is reserved.")
    @action(detail=True, methods=["post"])
    def skip(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, services.skip_series)

    @_control("End a series", "Its reserved occurrence is canceled; no more are created.")
    @action(detail=True, methods=["post"])
    def end(self, request: Request, pk: str | None = None) -> Response:
        return self._act(request, services.end_series)
