"""Unsubscribe by mail: the message a mail client sends to the ``mailto:`` of List-Unsubscribe (RFC 2369).

That ``mailto:`` (offered where UNSUBSCRIBE_MAILTO is set) carries the recipient's token in its
subject, ``unsubscribe <token>``. The mail server (a pipe alias) or fetchmail (``--mda``) hands
each message that arrives at that address to ``manage.py unsubscribe_mail``, which calls
unsubscribe_by_mail. As on the page, the signed token is the only credential: the From header is
not trusted (anyone can write it) and not needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import cast

from subscriptions import services
from subscriptions.exceptions import SuppressionError
from subscriptions.models import Suppression
from subscriptions.tokens import BadToken, Unsubscribe, read_token

MAX_MESSAGE_BYTES = 1_000_000  # an unsubscribe request is a few KB; anything larger is not one
MAX_TEXT_CHARS = 8_000  # of the subject and of the plain text body, searched for the token
MAX_CANDIDATES = 10  # token-shaped strings tried per message

# What make_token returns: Django's signing, the payload in URL-safe base64 ("." first when
# compressed), ":", and the HMAC (SHA-256, 43 characters of URL-safe base64).
_TOKEN_SHAPE = re.compile(r"\.?[A-Za-z0-9_-]{8,}:[A-Za-z0-9_-]{40,}")


@dataclass(frozen=True)
class Outcome:
    """What one message did: the suppression it names (None if it names none) and whether it is new."""

    target: Unsubscribe | None
    created: bool = False
    problem: str = ""

    def summary(self) -> str:
        if self.target is None:
            return f"ignored: {self.problem}"
        where = self.target.list_name or "all bulk mail"
        state = "unsubscribed" if self.created else "already unsubscribed"
        return f"{state}: {self.target.address} from {where}"


def unsubscribe_by_mail(raw: bytes) -> Outcome:
    """Suppress the address and list named by the token in message ``raw``; idempotent.

    The token is looked for in the subject (where the mailto: puts it), then in the plain text
    body (a client that drops the subject parameter, a reader who pastes it). A message without a
    valid token changes nothing. Database errors propagate: the caller asks the mail server to try again.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        return Outcome(target=None, problem=f"message over {MAX_MESSAGE_BYTES} bytes")
    message = cast(EmailMessage, message_from_bytes(raw, policy=policy.default))
    target = find_token(message)
    if target is None:
        return Outcome(target=None, problem="no valid unsubscribe token in the subject or the text")
    try:
        _suppression, created = services.suppress_address(
            address=target.address, list_name=target.list_name, how=Suppression.How.MAIL
        )
    except SuppressionError as exc:  # signed here, but from before today's address rules
        return Outcome(target=None, problem=str(exc))
    return Outcome(target=target, created=created)


def find_token(message: EmailMessage) -> Unsubscribe | None:
    """What the first valid token in the subject or the plain text body names; None if there is none."""
    tried = 0
    for text in (_subject(message), _plain_text(message)):
        for candidate in _TOKEN_SHAPE.findall(text[:MAX_TEXT_CHARS]):
            if tried >= MAX_CANDIDATES:
                return None
            tried += 1
            try:
                return read_token(candidate)
            except BadToken:
                continue
    return None


# Why the broad excepts below: a message the email package cannot take apart is no request to
# unsubscribe, and an error here would make the mail server keep it and retry it for days.


def _subject(message: EmailMessage) -> str:
    try:
        return str(message.get("Subject", ""))
    except Exception:  # noqa: BLE001 - see above
        return ""


def _plain_text(message: EmailMessage) -> str:
    try:
        part = message.get_body(preferencelist=("plain",))
        return "" if part is None else str(cast(EmailMessage, part).get_content())
    except Exception:  # noqa: BLE001 - see above (an unknown charset, a broken encoding, broken MIME)
        return ""
