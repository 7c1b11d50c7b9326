"""GET /api/notifications/?since= : the page's poll endpoint, for API clients."""

from __future__ import annotations

from django.utils import timezone, translation
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from notifications.query import parse_since
from notifications.selectors import poll_items
from reservemail.api_schema import FieldErrorsSerializer, api_responses
from reservemail.authentication import API_AUTHENTICATION
from reservemail.http import signed_in
from tasks.serializers import QuerySerializer


class SinceField(serializers.FloatField):
    """``since`` as notifications.query.parse_since reads it for both poll doors."""

    def to_internal_value(self, data: object) -> float:
        try:
            return parse_since(data if isinstance(data, str) else str(data))
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class NotificationPollQuerySerializer(QuerySerializer):
    since = SinceField(
        required=False,
        default=0.0,
        min_value=0.0,
        help_text="Only rows changed after this server timestamp (seconds since the epoch, as in "
        "`timestamp` or the X-Server-Time header of the previous answer).",
    )


class NotificationItemSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="task_progress, task_reserve, ...")
    data = serializers.JSONField(help_text="The payload; list kinds hold one entry per task.")  # type: ignore[assignment]
    timestamp = serializers.FloatField()


class NotificationPollView(APIView):
    """The signed-in user's notifications changed after ``since``, time remaining computed now."""

    authentication_classes = API_AUTHENTICATION

    @extend_schema(
        summary="Notifications changed since a timestamp",
        **api_responses(
            {200: NotificationItemSerializer(many=True)},
            errors=[400, 401],
            server_time=True,
            parameters=[NotificationPollQuerySerializer],
            overrides={
                400: OpenApiResponse(
                    FieldErrorsSerializer,
                    description="`since` is not a number >= 0.",
                    examples=[
                        OpenApiExample(
                            "Bad since",
                            response_only=True,
                            value={"since": ["A valid number is required."]},
                        )
                    ],
                )
            },
        ),
        examples=[
            OpenApiExample(
                "Reservation counting down",
                response_only=True,
                status_codes=["200"],
                # One item: drf-spectacular shows the example of a list response as a list of it.
                value={
                    "name": "task_reserve",
                    "data": [
                        {
                            "task_id": 42,
                            "status": "reserved",
                            "description": "June newsletter",
                            "progress": 0,
                            "failed": False,
                            "reserved_at": "2026-06-01T09:00:00+09:00",
                            "remaining_seconds": 3720,
                            "remaining_text": "1h 2m left",
                        }
                    ],
                    "timestamp": 1779944591.402113,
                },
            )
        ],
    )
    def get(self, request: Request) -> Response:
        query = NotificationPollQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        now = timezone.now()
        items = poll_items(
            owner_id=signed_in(request).pk,
            since=query.validated_data["since"],
            now=now,
            language=translation.get_language() or "en",
            tz=timezone.get_current_timezone(),
        )
        return Response(items, headers={"X-Server-Time": f"{now.timestamp():.3f}"})
