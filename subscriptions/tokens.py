"""Unsubscribe tokens: an address and a list, signed with Django's signing under a salt of their own.

The token is the link's only credential, so it carries no expiry (and no timestamp: one address and list
always get the same link): a link in a mail from last year still unsubscribes. It names the address and the
list in clear (base64), and the HMAC over both (SECRET_KEY and this salt) makes it unguessable and
unchangeable: another address or list needs another signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "reservemail.subscriptions.unsubscribe"


class BadToken(Exception):
    """The token was not made here: tampered with, truncated, or signed for something else."""


@dataclass(frozen=True)
class Unsubscribe:
    """What a valid token names."""

    address: str
    list_name: str


def make_token(*, address: str, list_name: str) -> str:
    """Sign ``address`` (lower-cased) and ``list_name`` into a URL-safe token."""
    return signing.Signer(salt=SALT).sign_object({"a": address.lower(), "l": list_name})


def read_token(token: str) -> Unsubscribe:
    """Return what ``token`` names; raise BadToken unless it is exactly one this module signed."""
    try:
        data = signing.Signer(salt=SALT).unsign_object(token)
    except (signing.BadSignature, ValueError) as exc:  # ValueError: signed, but not JSON (cannot happen unforged)
        raise BadToken(str(exc)) from exc
    if not (isinstance(data, dict) and isinstance(data.get("a"), str) and isinstance(data.get("l"), str)):
        raise BadToken("unexpected payload")
    return Unsubscribe(address=data["a"], list_name=data["l"])


@dataclass(frozen=True)
class Links:
    """Where ``address`` unsubscribes from a list: the page (and one-click endpoint), and a mailbox if configured."""

    url: str
    mailto: str | None

    def header(self) -> str:
        """The List-Unsubscribe value: the HTTPS link first (RFC 8058 one-click uses it), then the mailto."""
        return ", ".join(f"<{uri}>" for uri in (self.url, self.mailto) if uri)


@lru_cache(maxsize=1)
def _page_path() -> tuple[str, str]:
    """The page's path before and after its token. Why cached: reverse() costs twice the signing, per mail,
    and gives the same path around every token (its characters, URL-safe base64 and ':', are not quoted)."""
    marker = "TOKEN"
    before, _marker, after = reverse("subscriptions:unsubscribe", kwargs={"token": marker}).rpartition(marker)
    return before, after


def unsubscribe_links(*, address: str, list_name: str) -> Links:
    """The absolute link to /u/<token>/ under SITE_URL, and a ``mailto:`` with the token in its subject when
    UNSUBSCRIBE_MAILTO is set."""
    return _links(make_token(address=address, list_name=list_name))


# Where a real token would be: no signature, so the page and the mailbox answer that the link is not valid.
SAMPLE_TOKEN = "sample-link-of-a-preview"  # noqa: S105 - a placeholder, deliberately not a credential


def sample_links() -> Links:
    """Links shaped as a recipient's, unsubscribing nobody: for what the sender sees (previews, copies).

    Why: the token is the recipient's only credential, and suppressions hold for every sender's bulk
    mail; a sender who could preview a copy for any address would get a working link for it.
    """
    return _links(SAMPLE_TOKEN)


def _links(token: str) -> Links:
    before, after = _page_path()
    url = f"{settings.SITE_URL.rstrip('/')}{before}{token}{after}"
    mailbox = settings.UNSUBSCRIBE_MAILTO
    mailto = f"mailto:{mailbox}?subject={quote('unsubscribe ' + token)}" if mailbox else None
    return Links(url=url, mailto=mailto)
