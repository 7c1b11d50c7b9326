"""Messages encoded for SMTP: the DATA bytes, the envelope, and what the relay must announce for them.

A message to or from an address with UTF-8 before the @ goes with SMTPUTF8 (RFC 6531) in MAIL
FROM and its address headers in UTF-8 (RFC 6532); every other message is sent exactly as before.
A relay that does not announce SMTPUTF8 fails such a recipient permanently (tasks.mail.SmtpUtf8Unsupported).
A relay without 8BITMIME gets 8-bit body parts re-encoded as quoted-printable.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import smtplib
from dataclasses import dataclass
from email import charset as email_charset
from email.generator import BytesGenerator
from email.message import Message
from email.policy import Compat32, compat32
from email.utils import formatdate
from functools import lru_cache
from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.mail.message import EmailMessage, sanitize_address

from reservemail.addresses import needs_smtputf8
from tasks.mail import SmtpUtf8Unsupported
from tasks.recipients import split_entry

EIGHT_BIT = ["BODY=8BITMIME"]  # RFC 6152: the DATA that follows has 8-bit body parts
SMTPUTF8 = ["SMTPUTF8"]  # RFC 6531: the envelope and headers hold UTF-8 addresses


@dataclass(frozen=True)
class Envelope:
    """A message encoded for SMTP: envelope sender, recipients, the DATA bytes, and whether it needs SMTPUTF8."""

    message: EmailMessage
    sender: str
    recipients: list[str]
    data: bytes
    utf8: bool = False


def _envelope(message: EmailMessage) -> Envelope:
    encoding = message.encoding or settings.DEFAULT_CHARSET
    if _needs_smtputf8(message):
        return Envelope(
            message=message,
            sender=_utf8_envelope_address(message.from_email, encoding),
            recipients=[_utf8_envelope_address(address, encoding) for address in message.recipients()],
            data=encode(message, utf8=True),
            utf8=True,
        )
    return Envelope(
        message=message,
        sender=_sender(message.from_email, encoding),
        recipients=[_sanitize(address, encoding) for address in message.recipients()],
        data=encode(message),
    )


def restamp(envelope: Envelope, *, old_id: str, message_id: str) -> Envelope | None:
    """``envelope`` (encoded earlier with Message-ID ``old_id``) with ``message_id`` and the current Date.

    For a message rendered and encoded ahead of its send (tasks.delivery.prepared): the bytes are
    what encode() writes for the message carrying ``message_id`` now, the MIME boundaries aside.
    None when that cannot be promised by replacing two header lines (a Message-ID the encoder
    would fold, or headers not as encode() writes them): the caller renders the message again.
    ``envelope.message`` gets the new Message-ID too, for a re-encode for the relay (_for_relay).
    """
    if not _QUICK_COMPAT32.writes_on_one_line("Message-ID", message_id):
        return None
    line = f"Message-ID: {message_id}"
    end = envelope.data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head, body = envelope.data[: end + 2], envelope.data[end + 2 :]  # every header line ends in CRLF
    old_line = f"\r\nMessage-ID: {old_id}\r\n".encode("ascii")
    if head.count(old_line) != 1 or head.count(b"\r\nDate: ") != 1:
        return None
    head = head.replace(old_line, f"\r\n{line}\r\n".encode("ascii"), 1)
    date_at = head.index(b"\r\nDate: ") + len(b"\r\nDate: ")
    date = formatdate(localtime=settings.EMAIL_USE_LOCALTIME).encode("ascii")
    head = head[:date_at] + date + head[head.index(b"\r\n", date_at) :]
    envelope.message.extra_headers["Message-ID"] = message_id
    return dataclasses.replace(envelope, data=head + body)


def _bare(value: str) -> str:
    """The address of a header value (``Name <address>`` or the address)."""
    return split_entry(value)[1]


def _needs_smtputf8(message: EmailMessage) -> bool:
    return any(needs_smtputf8(_bare(value)) for value in [message.from_email, *message.recipients()] if value)


def _utf8_envelope_address(value: str, encoding: str) -> str:
    """The envelope address of ``value`` in an SMTPUTF8 transaction: UTF-8 before the @, the domain in punycode.

    (Django's sanitize_address would RFC 2047-encode the local part, which names another mailbox.)
    """
    address = _bare(value)
    if not needs_smtputf8(address):
        return _sanitize(address, encoding)
    local, _at, domain = address.rpartition("@")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


def encode(message: EmailMessage, *, seven_bit: bool = False, utf8: bool = False) -> bytes:
    """The message as SMTP DATA, as Django's backend sends it, with each MIME boundary set here.

    Why: left unset, the email package draws a boundary and compiles a regular expression
    from it to search the body for it, once per message: a tenth of a mail's CPU (measured).
    A random 128-bit boundary cannot occur in a body by chance, and no body sees it before.
    ``seven_bit`` re-encodes 8-bit text parts as quoted-printable, for a relay without 8BITMIME.
    ``utf8`` writes the address headers that hold a UTF-8 local part as UTF-8 (RFC 6532), for SMTPUTF8.
    """
    mime = message.message()
    for part in mime.walk():
        if part.is_multipart() and part.get_boundary() is None:
            part.set_boundary(f"=_rm{secrets.token_hex(16)}")
        elif seven_bit and not part.is_multipart():
            _to_quoted_printable(part)
    if utf8:
        _utf8_address_headers(mime, message)
    if mime.policy is not compat32:  # not the policy of Django's messages: written as Django writes it
        return mime.as_bytes(linesep="\r\n")
    out = BytesIO()
    BytesGenerator(out, mangle_from_=False, policy=_QUICK_COMPAT32).flatten(mime, linesep="\r\n")
    return out.getvalue()


# A header value that compat32 writes unchanged when it fits on one line: printable ASCII (control
# characters it splits lines at; non-ASCII it encodes). Tabs and end spaces it also keeps, but they
# are rare in a header and left to the stock path.
_ONE_LINE_VALUE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


class _QuickCompat32(Compat32):
    """compat32 (the policy of Django's messages), writing a header that needs no folding without folding it.

    Why: compat32 passes every header through email.header.Header's folding machinery, although
    nearly every header of a mail is short plain ASCII that comes out exactly as it went in: a
    third of the encoding's CPU (measured: 0.29 -> 0.20 ms per newsletter mail). Any other value
    takes the stock path. tests/tasks/test_encoding_policy.py checks the two agree byte for byte.
    """

    def writes_on_one_line(self, name: str, value: Any) -> bool:
        """Whether header ``name: value`` is written as it is, on one line (no folding, no encoding)."""
        fits = isinstance(value, str) and len(name) + 2 + len(value) <= (self.max_line_length or 0)
        return fits and _ONE_LINE_VALUE.fullmatch(value) is not None

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if self.writes_on_one_line(name, value):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)  # type: ignore[misc]  # typeshed omits the private _fold


_QUICK_COMPAT32 = _QuickCompat32()


def _utf8_address_headers(mime: Message, message: EmailMessage) -> None:
    """Replace each address header naming a UTF-8 local part by its value as given, written as UTF-8.

    Django encodes such a local part per RFC 2047, which no mail reader decodes inside an address.
    A value with surrogate escapes is written unfolded as its original bytes by the email package's
    compat32 policy (the one Django's messages use): UTF-8, as RFC 6532 and email.policy.SMTPUTF8 write it.
    Django has refused line breaks in these values already, when it built ``mime``.
    """
    headers = {
        "From": [message.extra_headers.get("From", message.from_email)],
        "To": message.to,
        "Cc": message.cc,
        "Reply-To": message.reply_to,
    }
    for name, values in headers.items():
        if name in mime and any(needs_smtputf8(_bare(value)) for value in values if value):
            mime.replace_header(name, ", ".join(values).encode("utf-8").decode("ascii", "surrogateescape"))


def _to_quoted_printable(part: Message) -> None:
    """Re-encode a text part sent as 8bit (Django's choice for UTF-8 text with short lines) as quoted-printable."""
    if str(part.get("Content-Transfer-Encoding", "")).lower() != "8bit":
        return
    charset = part.get_content_charset() or "utf-8"
    raw = part.get_payload(decode=True)
    text = raw.decode(charset) if isinstance(raw, bytes) else str(raw)
    qp = email_charset.Charset(charset)
    qp.body_encoding = email_charset.QP
    del part["Content-Transfer-Encoding"]
    part.set_payload(text, qp)


def _for_relay(envelope: Envelope, wire: smtplib.SMTP) -> tuple[bytes, list[str]]:
    """DATA and MAIL FROM options for this relay: BODY=8BITMIME for 8-bit DATA if it announces it, else 7-bit DATA.

    Headers are ASCII (Django encodes them per RFC 2047), so only a body part can make DATA 8-bit;
    except in an SMTPUTF8 message, which needs the relay's SMTPUTF8 (else SmtpUtf8Unsupported is raised).
    """
    if envelope.utf8:
        return _for_utf8_relay(envelope, wire)
    if envelope.data.isascii():
        return envelope.data, []
    wire.ehlo_or_helo_if_needed()  # Django's open() says EHLO only for STARTTLS or a login
    if wire.has_extn("8bitmime"):
        return envelope.data, EIGHT_BIT
    return encode(envelope.message, seven_bit=True), []


def _for_utf8_relay(envelope: Envelope, wire: smtplib.SMTP) -> tuple[bytes, list[str]]:
    """SMTPUTF8 (and BODY=8BITMIME, RFC 6531 3.4) if announced; 7-bit bodies under UTF-8 headers without 8BITMIME."""
    wire.ehlo_or_helo_if_needed()
    if not wire.has_extn("smtputf8"):
        utf8 = [a for a in [envelope.sender, *envelope.recipients] if needs_smtputf8(_bare(a))]
        raise SmtpUtf8Unsupported(", ".join(utf8))
    if wire.has_extn("8bitmime"):
        return envelope.data, SMTPUTF8 + EIGHT_BIT
    return encode(envelope.message, seven_bit=True, utf8=True), SMTPUTF8


# A plain ASCII local@domain (a dot-atom at a dotted host name), which sanitize_address returns unchanged.
_PLAIN_ADDRESS = re.compile(
    r"[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9A-Za-z]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)


def _sanitize(address: str, encoding: str) -> str:
    """Django's sanitize_address, skipping its header parser for a plain address (a fifth of a send's CPU)."""
    if isinstance(address, str) and _PLAIN_ADDRESS.fullmatch(address):
        return address
    return sanitize_address(address, encoding)


@lru_cache(maxsize=16)
def _sender(address: str, encoding: str) -> str:
    """The envelope sender: DEFAULT_FROM_EMAIL for nearly every mail, so parsed once."""
    return sanitize_address(address, encoding)
