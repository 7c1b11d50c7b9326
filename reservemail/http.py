"""Request types for views that require a signed-in user."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class AuthedRequest(HttpRequest):
    """The request of a view behind ``login_required``: ``user`` is a real user, not AnonymousUser."""

    user: User
