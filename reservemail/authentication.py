"""API token authentication: ``Authorization: Token <key>`` or ``Authorization: Bearer <key>``, and its schema.

Stock and generated clients send ``Bearer``; DRF's TokenAuthentication knows only its one keyword. The key is the
same either way. ``/metrics`` and django-rq's ``stats.json`` read ``Bearer $METRICS_TOKEN`` themselves; they are not
DRF views, so the two never meet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, TokenAuthentication, get_authorization_header
from rest_framework.authtoken.models import Token
from rest_framework.request import Request

if TYPE_CHECKING:  # drf_spectacular.openapi imports rest_framework.views, which imports this module
    from drf_spectacular.openapi import AutoSchema


class TokenOrBearerAuthentication(TokenAuthentication):
    """DRF token authentication that takes the ``Token`` or the ``Bearer`` keyword (case-insensitive)."""

    keywords = ("Token", "Bearer")

    def authenticate(self, request: Request) -> tuple[AbstractBaseUser, Token] | None:
        auth = get_authorization_header(request).split()
        if not auth or auth[0].lower() not in {keyword.lower().encode() for keyword in self.keywords}:
            return None
        if len(auth) == 1:
            raise exceptions.AuthenticationFailed(_("Invalid token header. No credentials provided."))
        if len(auth) > 2:
            raise exceptions.AuthenticationFailed(_("Invalid token header. Token string should not contain spaces."))
        try:
            key = auth[1].decode()
        except UnicodeError as exc:
            raise exceptions.AuthenticationFailed(
                _("Invalid token header. Token string should not contain invalid characters.")
            ) from exc
        return self.authenticate_credentials(key)


class TokenOrBearerScheme(OpenApiAuthenticationExtension):
    """Two alternative schemes in the schema: ``tokenAuth`` (``Token <key>``) and ``bearerAuth`` (HTTP bearer)."""

    target_class = TokenOrBearerAuthentication
    name = ["tokenAuth", "bearerAuth"]
    priority = 1  # above drf-spectacular's own TokenScheme, which matches subclasses too

    def get_security_requirement(self, auto_schema: AutoSchema) -> list[dict[str, list[Any]]]:
        return [{"tokenAuth": []}, {"bearerAuth": []}]

    def get_security_definition(self, auto_schema: AutoSchema) -> list[dict[str, Any]]:
        return [
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": 'Token-based authentication with required prefix "Token"',
            },
            {
                "type": "http",
                "scheme": "bearer",
                "description": "The same API token as a bearer token: `Authorization: Bearer <token>`.",
            },
        ]


# What every API view takes. The token first, so a request without credentials gets 401 with
# ``WWW-Authenticate: Token`` (not 403).
API_AUTHENTICATION = [TokenOrBearerAuthentication, SessionAuthentication]
