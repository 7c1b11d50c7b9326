"""Small request helpers every app may import: request types, the signed-in user of an API request,
and a page's "yours or 404" read."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from django.contrib.auth.models import AbstractBaseUser, User
from django.http import Http404, HttpRequest
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request

from reservemail.exceptions import ReservemailError

P = ParamSpec("P")
T = TypeVar("T")


class AuthedRequest(HttpRequest):
    """The request of a view behind ``login_required``: ``user`` is a real user, not AnonymousUser."""

    user: User


def signed_in(request: Request) -> AbstractBaseUser:
    """The request's user; IsAuthenticated has refused anonymous requests before any handler runs."""
    if not request.user.is_authenticated:  # pragma: no cover - a misconfigured view, not a client error
        raise NotAuthenticated
    return cast(AbstractBaseUser, request.user)


def found_or_404(read: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Call an owner-scoped selector (``get_task_of``, ``get_series_of``); its not-found error becomes Http404.

    The selectors raise a ReservemailError with status 404 for a missing id and for another
    user's row alike, so a page cannot tell whether someone else's task exists. Other errors pass.
    """
    try:
        return read(*args, **kwargs)
    except ReservemailError as exc:
        if exc.status != 404:
            raise
        raise Http404(str(exc)) from exc
