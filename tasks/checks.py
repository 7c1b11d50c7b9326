"""System checks for the mail settings: a sender address real relays and inboxes accept.

Registered by tasks.apps: check_sender for every check run (it reports only with DEBUG off, so
a production start refuses the sender), check_sender_for_deploy for ``check --deploy``.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error

# RFC 2606 / RFC 6761: names that never reach anyone. A relay refuses them or the receiver's
# alignment checks fail, and the Message-ID domain (tasks.mail.new_message_id) follows the sender.
RESERVED_DOMAINS = ("localhost", "example.com", "example.net", "example.org", "example", "test", "invalid")


def reserved_sender_domain(address: str) -> str | None:
    """The domain of ``address`` if it is localhost, a reserved example domain or has none; else None."""
    domain = parseaddr(address)[1].rpartition("@")[2].strip().rstrip(".").lower()
    if not domain:
        return "(none)"
    if "." not in domain and domain != "localhost":
        return domain  # a bare host name: not deliverable from outside
    if any(domain == name or domain.endswith(f".{name}") for name in RESERVED_DOMAINS):
        return domain
    return None


def _sender_errors() -> list[CheckMessage]:
    domain = reserved_sender_domain(settings.DEFAULT_FROM_EMAIL)
    if domain is None:
        return []
    return [
        Error(
            f"DEFAULT_FROM_EMAIL ({settings.DEFAULT_FROM_EMAIL!r}) is at {domain}, "
            "which no mail relay or inbox accepts.",
            hint="Set DEFAULT_FROM_EMAIL to an address at your own domain, e.g. 'reservemail <noreply@mail.your.org>'.",
            id="tasks.E001",
        )
    ]


def check_sender_for_deploy(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """``check --deploy``: the sender must be real (with DEBUG off the check below already ran)."""
    return _sender_errors() if settings.DEBUG else []


def check_sender(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Production (DEBUG off): every command that runs checks (migrate, runserver, check) refuses a fake sender."""
    return [] if settings.DEBUG else _sender_errors()
