"""The suppression list under /api/suppressions/: staff read it (and may add to it); others get 403."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from reservemail.api_schema import api_responses
from reservemail.authentication import API_AUTHENTICATION
from reservemail.parsers import SafeJSONParser
from subscriptions import services
from subscriptions.models import Suppression
from subscriptions.selectors import list_suppressions
from subscriptions.serializers import SuppressionCreateInputSerializer, SuppressionOutputSerializer
from tasks.serializers import ErrorSerializer


def _error(description: str, detail: str, code: str) -> OpenApiResponse:
    return OpenApiResponse(
        ErrorSerializer,
        description=description,
        examples=[OpenApiExample(code, value={"detail": detail, "code": code}, response_only=True)],
    )


STAFF_ONLY = _error(
    "Signed in, but not staff (`is_staff`); or signed in with a session cookie but without the CSRF token, which a "
    "session write needs in the `X-CSRFToken` header.",
    "You do not have permission to perform this action.",
    "permission_denied",
)
NOT_FOUND = _error("No such suppression, or no such page.", "Not found.", "not_found")
OVERRIDES = {403: STAFF_ONLY, 404: NOT_FOUND}


@extend_schema_view(
    list=extend_schema(
        summary="The suppression list (staff only), newest first",
        **api_responses({200: SuppressionOutputSerializer(many=True)}, errors=[401, 403, 404], overrides=OVERRIDES),
    ),
    retrieve=extend_schema(
        summary="One suppression (staff only)",
        **api_responses({200: SuppressionOutputSerializer}, errors=[401, 403, 404], overrides=OVERRIDES),
    ),
    create=extend_schema(
        summary="Suppress an address (staff only)",
        description="Stops bulk mail of `list_name` (empty or left out: every bulk list) to `address`; "
        "transactional mail is not affected. Idempotent: an address already suppressed for that list or for all "
        "bulk mail answers 200 with the existing row, unchanged.",
        request=SuppressionCreateInputSerializer,
        **api_responses(
            {201: SuppressionOutputSerializer, 200: SuppressionOutputSerializer},
            errors=[400, 401, 403, 415],
            overrides={403: STAFF_ONLY},
        ),
    ),
)
class SuppressionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Addresses that get no more bulk mail (of one list, or all). Transactional mail is not affected."""

    authentication_classes = API_AUTHENTICATION
    permission_classes = [IsAdminUser]
    serializer_class = SuppressionOutputSerializer
    parser_classes = [SafeJSONParser]

    def get_queryset(self) -> QuerySet[Suppression]:
        return list_suppressions()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = SuppressionCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        suppression, created = services.suppress_address(
            address=data.validated_data["address"],
            list_name=data.validated_data["list_name"],
            how=Suppression.How.API,
        )
        body = SuppressionOutputSerializer(suppression).data
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
