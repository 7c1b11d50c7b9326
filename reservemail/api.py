"""The API's router and its one exception handler (domain errors -> 400/404/409/503)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from reservemail import csp
from reservemail.api_schema import FieldErrorsSerializer, api_responses
from reservemail.exceptions import ReservemailError
from reservemail.parsers import SafeJSONParser
from reservemail.signin import SigninLockedError, lockout_seconds
from tasks.serializers import ErrorSerializer


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


class TokenLoginInputSerializer(AuthTokenSerializer):
    """Username and password; a username longer than any account's is a field error, not a sign-in attempt."""

    username = serializers.CharField(
        label="Username", write_only=True, max_length=get_user_model()._meta.get_field("username").max_length or 150
    )


class TokenLoginView(ObtainAuthToken):
    """POST username and password as JSON, get the user's API token (created on first use).

    Anonymous by design: no authentication runs here, so a stale ``Authorization`` header cannot block getting a
    new token. Failed attempts count towards the sign-in limits (reservemail.signin); a locked account or address
    gets 429 with ``Retry-After``.
    """

    authentication_classes = []  # type: ignore[var-annotated]  # the header is ignored, not checked
    permission_classes = [AllowAny]
    parser_classes = [SafeJSONParser]  # JSON only; a deep-nested body is a 400, not a RecursionError
    serializer_class = TokenLoginInputSerializer

    @extend_schema(
        summary="Get your API token",
        description=(
            "Anonymous: any `Authorization` header is ignored. After too many failed sign-ins for the account or "
            "from the client address, answers 429 with `Retry-After` until the lock lifts."
        ),
        auth=[],
        request={"application/json": TokenLoginInputSerializer},
        **api_responses(
            {200: inline_serializer("TokenOutput", {"token": serializers.CharField()})},
            errors=[400, 415, 429],
            overrides={
                400: OpenApiResponse(
                    FieldErrorsSerializer,
                    description="Missing fields or wrong credentials.",
                    examples=[
                        OpenApiExample(
                            "Wrong credentials",
                            value={"non_field_errors": ["Unable to log in with provided credentials."]},
                            response_only=True,
                        )
                    ],
                ),
                429: OpenApiResponse(
                    ErrorSerializer,
                    description="Too many failed sign-ins for this account or from this address; see `Retry-After`.",
                    examples=[
                        OpenApiExample(
                            "Locked",
                            value={
                                "detail": "Too many failed sign-ins. Try again in 15 minutes.",
                                "code": "signin_locked",
                            },
                            response_only=True,
                        )
                    ],
                ),
            },
        ),
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            if getattr(request, "axes_locked_out", False):  # set by django-axes while authenticating
                username = request.data.get("username") if isinstance(request.data, dict) else None
                raise SigninLockedError(retry_after=max(lockout_seconds(request, {"username": username}), 1))
            raise ValidationError(serializer.errors)
        token, _created = Token.objects.get_or_create(user=serializer.validated_data["user"])
        return Response({"token": token.key})


# ReDoc's bundle shows its vendor's logo from the vendor's CDN in the sidebar footer, with no option to turn it
# off. This policy keeps the page on our own host: the browser refuses that image before any request is made
# (ReDoc then hides it), and any other off-host load. Styles are inline (ReDoc injects them); its search runs in a
# worker it creates from a blob.
REDOC_CSP = csp.policy(img_src="'self' data:", worker_src="'self' blob:")


class OfflineRedocView(SpectacularRedocView):
    """ReDoc from our static files (drf-spectacular-sidecar), with no font, logo or script from another host."""

    template_name = "api/redoc.html"
    http_method_names = ["get", "head"]  # a page: OPTIONS would render its metadata through the page's template

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().get(request, *args, **kwargs)
        response[csp.HEADER] = REDOC_CSP
        return response


class SwaggerView(SpectacularSwaggerSplitView):
    """Swagger UI, its start-up script served from a URL (not inline), so the pages' policy holds.

    GET and HEAD only: DRF answered OPTIONS by rendering its metadata through the page's template,
    which needs the page's context (a 500).
    """

    http_method_names = ["get", "head"]


@csrf_exempt  # it changes nothing; without this an unknown POST would get the HTML CSRF page
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Any other path under /api/: a JSON 404, like the API's own, not Django's HTML page."""
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


# Django's error views (urls.handler400/403/404/500), used when DEBUG is off: JSON under /api/, Django's own
# pages elsewhere. DRF's views answer their own errors through exception_handler; these catch what reaches Django
# itself: an exception no handler maps (a 500), a SuspiciousOperation raised outside a view, an Http404 from a
# plain Django view.


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def _error(request: HttpRequest, status: int, detail: str, code: str) -> JsonResponse:
    return JsonResponse({"detail": detail, "code": code}, status=status)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """400: JSON under /api/."""
    if _is_api(request):
        return _error(request, 400, "Bad request.", "bad_request")
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """403: JSON under /api/."""
    if _is_api(request):
        return _error(request, 403, "You do not have permission to perform this action.", "permission_denied")
    return defaults.permission_denied(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404: JSON under /api/."""
    if _is_api(request):
        return _error(request, 404, "Not found.", "not_found")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """500: JSON under /api/ (the traceback is logged by Django, never shown)."""
    if _is_api(request):
        return _error(request, 500, "Server error.", "server_error")
    return defaults.server_error(request)
