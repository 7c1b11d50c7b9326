"""Content-Security-Policy for every page: scripts only from our own host, nothing loaded from another.

The pages run no inline script (their data travels in ``<script type="application/json">`` blocks,
which are not run), so ``script-src 'self'`` holds for them and an injected ``<script>`` or
``onerror=`` is refused by the browser even if escaping ever failed. Inline styles stay allowed: the
live progress bars and the mail previews (their HTML is the user's own mail) use them. Images may
come from https hosts, as a mail's own images do in its preview; the preview frame is sandboxed.
Views with other needs set their own header (ReDoc, the RQ dashboard); the middleware leaves it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"

DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: https:",
    "font-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'self'",
}


def policy(**changes: str) -> str:
    """The header value: DIRECTIVES with ``changes`` (``worker_src="'self' blob:"`` for worker-src)."""
    directives = {**DIRECTIVES, **{name.replace("_", "-"): value for name, value in changes.items()}}
    return "; ".join(f"{name} {value}" for name, value in directives.items())


PAGES = policy()


class ContentSecurityPolicyMiddleware:
    """Set PAGES on every response that has no policy of its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = PAGES
        return response
