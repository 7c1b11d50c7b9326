"""One mail connection per worker process, reused across jobs and reopened after errors or idling.

The connection is closed with QUIT after EMAIL_IDLE_SECONDS without a send (the worker's
maintenance step calls close_if_idle()) and when the worker stops; one idle for more than
EMAIL_NOOP_SECONDS is checked with NOOP before reuse. A relay refusal (tasks.relay) is recorded
for health and cleared by the first send that goes through after a connection is opened.

A message to or from an address with UTF-8 before the @ goes with SMTPUTF8 (RFC 6531) in MAIL
FROM and its address headers in UTF-8 (RFC 6532); every other message is sent exactly as before.
A relay that does not announce SMTPUTF8 fails such a recipient permanently (tasks.mail.SmtpUtf8Unsupported).
"""

from __future__ import annotations

import logging
import re
import secrets
import smtplib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email import charset as email_charset
from email.message import Message
from functools import lru_cache, partial
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import EmailMessage, sanitize_address
from django.utils import timezone
from django.utils.module_loading import import_string

from reservemail.addresses import needs_smtputf8
from tasks import scheduler
from tasks.mail import SmtpUtf8Unsupported, describe
from tasks.recipients import split_entry
from tasks.relay import is_relay_refused

logger = logging.getLogger(__name__)

EIGHT_BIT = ["BODY=8BITMIME"]  # RFC 6152: the DATA that follows has 8-bit body parts
SMTPUTF8 = ["SMTPUTF8"]  # RFC 6531: the envelope and headers hold UTF-8 addresses
# After the relay refused us (certificate, TLS, login), sends within this many seconds fail with the
# same error without connecting: a backlog of pending tasks costs one TLS handshake per worker per
# hold-off, not one per task. A restarted worker (after fixing the settings) connects at once.
REFUSAL_HOLD_OFF = 5.0

Settle = Callable[[Any, BaseException | None], None]


@dataclass(frozen=True)
class Envelope:
    """A message encoded for SMTP: envelope sender, recipients, the DATA bytes, and whether it needs SMTPUTF8."""

    message: EmailMessage
    sender: str
    recipients: list[str]
    data: bytes
    utf8: bool = False


class MailSession:
    """A mail backend kept open between jobs of one worker (only for SMTP; others per job)."""

    def __init__(self) -> None:
        self._backend: BaseEmailBackend | None = None
        self._used_at = 0.0
        self._sender: ThreadPoolExecutor | None = None
        self._opened = False  # no send has gone through on this connection yet
        self.refusal: str | None = None  # why the relay refused the last send, while it does
        self._refused: tuple[BaseException, float] | None = None  # that error, and when

    def _open(self) -> BaseEmailBackend:
        backend = get_connection(fail_silently=False)
        backend.open()
        self._backend = backend
        self._used_at = time.monotonic()
        self._opened = isinstance(backend, SmtpBackend)
        return backend

    def backend(self) -> BaseEmailBackend:
        """The open backend: a connection idle too long is closed and one idle a while checked first."""
        if self._backend is None and self._refused is not None:
            error, at = self._refused
            if time.monotonic() - at < REFUSAL_HOLD_OFF:
                raise error
        if self._backend is not None:
            idle = time.monotonic() - self._used_at
            if idle > float(settings.EMAIL_IDLE_SECONDS) or (
                idle > float(settings.EMAIL_NOOP_SECONDS) and not self._answers()
            ):
                self.close()
        return self._backend or self._open()

    def _answers(self) -> bool:
        """Whether a kept SMTP connection still answers NOOP (a relay may have dropped it meanwhile)."""
        connection = getattr(self._backend, "connection", None)
        if connection is None:
            return True  # not SMTP: nothing to check
        try:
            return bool(connection.noop()[0] == 250)
        except (smtplib.SMTPException, OSError) as exc:
            logger.info("kept mail connection did not answer NOOP (%s); reopening", exc)
            return False

    def close_if_idle(self) -> bool:
        """Close (QUIT) a connection unused for EMAIL_IDLE_SECONDS; True if one was closed. The worker calls it."""
        if self._backend is None or time.monotonic() - self._used_at <= float(settings.EMAIL_IDLE_SECONDS):
            return False
        self.close()
        return True

    def encode(self, message: EmailMessage) -> EmailMessage | Envelope:
        """The message as it goes on the wire, for SMTP (other backends take the message itself).

        Done before the previous message's reply is awaited, so the encoding overlaps the wire
        too. A message that cannot be encoded is returned as it is; prepare() raises its error.
        """
        if not _smtp_configured():
            return message
        try:
            return _envelope(message)
        except Exception:  # noqa: BLE001 - prepare() encodes again and reports the error as the send's
            return message

    def prepare(self, item: EmailMessage | Envelope) -> tuple[Callable[[], BaseException | None], bool]:
        """Return a call that sends ``item`` (returning the error, if any) and whether it may run in a thread.

        For SMTP the message is encoded in the caller's thread (see encode()), and the call does
        only the wire work (smtplib's sendmail, as Django's backend does it), which waits on the
        server with the GIL released. Other backends (file, locmem, console) send in the caller's
        thread. Opening a connection that fails raises here. MAIL_SEND_OVERLAP=0 keeps SMTP in the
        caller's thread too.
        """
        backend = self.backend()
        if isinstance(backend, SmtpBackend) and backend.connection is not None:
            envelope = item if isinstance(item, Envelope) else _envelope(item)  # raises an encoding error
            wire = backend.connection
            data, options = _for_relay(envelope, wire)
            send = partial(wire.sendmail, envelope.sender, envelope.recipients, data, mail_options=options)
            return _capture(send), settings.MAIL_SEND_OVERLAP
        message = item.message if isinstance(item, Envelope) else item
        return _capture(lambda: _deliver(backend, message)), False

    def sent(self, error: BaseException | None) -> None:
        """Account for a finished send: keep the connection, or drop it after ``error``.

        A relay refusal is recorded for health; the first send through a new connection clears it.
        """
        if isinstance(error, SmtpUtf8Unsupported):
            return  # refused before the wire: the connection is as good as it was
        if error is not None:
            self.close()
            if is_relay_refused(error):
                self._record_refusal(error)
            else:
                self.refusal, self._refused = None, None
            return
        self._used_at = time.monotonic()
        if self._opened or self.refusal is not None:
            self._opened = False
            self.refusal, self._refused = None, None
            try:
                if scheduler.clear_relay_refused():
                    logger.warning("mail relay accepts sends again")
            except scheduler.QueueError as exc:
                logger.warning("could not clear the relay refusal in Redis: %s", exc)

    def _record_refusal(self, error: BaseException) -> None:
        held = self._refused is not None and self._refused[0] is error
        self.refusal = describe(error)
        if held:
            return  # the same refusal again, raised during the hold-off: recorded already
        self._refused = (error, time.monotonic())
        logger.error("mail %s", self.refusal)
        try:
            scheduler.record_relay_refused(reason=self.refusal, at=timezone.now())
        except scheduler.QueueError as exc:
            logger.warning("could not record the relay refusal in Redis: %s", exc)

    def sender(self) -> ThreadPoolExecutor:
        """The one helper thread that puts prepared messages on the wire, one at a time."""
        if self._sender is None:
            self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mail-send")
        return self._sender

    def end_job(self) -> None:
        """Keep an SMTP connection for the next job; close anything else (files, memory)."""
        if not isinstance(self._backend, SmtpBackend):
            self.close()

    def close(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            try:
                backend.close()
            except Exception as exc:  # noqa: BLE001 - closing a broken socket must not mask the real error
                logger.debug("closing mail connection failed: %s", exc)

    def shutdown(self) -> None:
        """The worker stops: QUIT the relay, stop the helper thread, forget a refusal (a new start retries at once)."""
        self.close()
        self.refusal, self._refused = None, None
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.shutdown(wait=True)

    def __enter__(self) -> MailSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end_job()


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


@lru_cache(maxsize=4)
def _smtp_backend_class(path: str) -> bool:
    return issubclass(import_string(path), SmtpBackend)


def _smtp_configured() -> bool:
    """Whether the configured backend speaks SMTP (asked without touching a connection in use)."""
    return _smtp_backend_class(settings.EMAIL_BACKEND)


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
    return mime.as_bytes(linesep="\r\n")


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


def _capture(send: Callable[[], object]) -> Callable[[], BaseException | None]:
    def call() -> BaseException | None:
        try:
            send()
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which classifies it
            return exc
        return None

    return call


def _deliver(backend: BaseEmailBackend, message: EmailMessage) -> None:
    if not backend.send_messages([message]):
        raise RuntimeError("the mail backend accepted nothing")


class Outbox:
    """Sends over the session's connection while the caller prepares the next message.

    Why: an SMTP send on one connection is mostly waiting for the server's four replies (about
    1.4 ms on loopback), and rendering plus MIME-encoding the next message is about 0.6 ms of
    CPU; done one after the other they cap a worker well below the connection's limit. Here the
    wire work runs in the session's helper thread. At most one message is on the wire, and the
    caller learns its outcome through ``settle(key, error)`` (in the caller's thread) before the
    next one is started, so "send, record, then the next" holds as in a plain loop: a caller
    that stops after an error never has a second message out.
    """

    def __init__(self, session: MailSession, settle: Settle) -> None:
        self._session = session
        self._settle = settle
        self._inflight: tuple[Any, Future[BaseException | None]] | None = None

    def encode(self, message: EmailMessage) -> EmailMessage | Envelope:
        """Encode ``message`` for the wire now, while the previous one may still be on it."""
        return self._session.encode(message)

    def start(self, key: Any, message: EmailMessage | Envelope) -> None:
        """Settle the message on the wire, then put ``message`` there (or send it here, off SMTP)."""
        self.flush()
        try:
            send, threaded = self._session.prepare(message)
        except Exception as exc:  # noqa: BLE001 - a connection that cannot be opened fails this send
            self._session.sent(exc)
            self._settle(key, exc)
            return
        if threaded:
            self._inflight = (key, self._session.sender().submit(send))
        else:
            self._finish(key, send())

    def flush(self) -> None:
        """Wait for the message on the wire (bounded by EMAIL_TIMEOUT) and settle it."""
        if self._inflight is not None:
            key, future = self._inflight
            self._inflight = None
            self._finish(key, future.result())

    def _finish(self, key: Any, error: BaseException | None) -> None:
        self._session.sent(error)
        self._settle(key, error)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: Any) -> None:
        if exc_type is None:
            self.flush()
            return
        try:  # already failing: still record what the last message did, if the database lets us
            self.flush()
        except Exception as exc:  # noqa: BLE001 - the original error is the one to raise
            logger.error("could not record the last send after an error: %s", exc)


session = MailSession()
