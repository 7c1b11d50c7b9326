"""Small request helpers every app may import: request types and the signed-in user of an API request."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import AbstractBaseUser, User
from django.http import HttpRequest
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request


class AuthedRequest(HttpRequest):
    """The request of a view behind ``login_required``: ``user`` is a real user, not AnonymousUser."""

    user: User


def signed_in(request: Request) -> AbstractBaseUser:
    """The request's user; IsAuthenticated has refused anonymous requests before any handler runs."""
    if not request.user.is_authenticated:  # pragma: no cover - a misconfigured view, not a client error
        raise NotAuthenticated
    return cast(AbstractBaseUser, request.user)
