"""System check for ``check --deploy``: the unsubscribe links in bulk mail must reach this site from outside.

Registered by subscriptions.apps. SITE_URL defaults to the development server's address, which is right on a
laptop and useless in a recipient's mailbox: the one-click POST of their provider would go nowhere.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from django.conf import settings
from django.core.checks import CheckMessage, Warning

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")  # noqa: S104 - names compared, nothing bound


def check_site_url(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Warn when SITE_URL is not an https:// address other machines can reach."""
    url = urlparse(settings.SITE_URL)
    host = (url.hostname or "").lower()
    hint = "Set SITE_URL to the public https:// origin of the web app, e.g. https://mail.your.org."
    if not host or host in LOCAL_HOSTS or host.endswith(".localhost"):
        message = f"SITE_URL ({settings.SITE_URL!r}) is not reachable from outside: unsubscribe links in bulk mail "
        message += "would not work."
        return [Warning(message, hint=hint, id="subscriptions.W001")]
    if url.scheme != "https":
        message = f"SITE_URL ({settings.SITE_URL!r}) is not https: mailbox providers expect an https "
        message += "List-Unsubscribe link for one-click unsubscribe (RFC 8058)."
        return [Warning(message, hint=hint, id="subscriptions.W002")]
    return []
