"""One mail connection per worker process, reused across jobs and reopened after errors or idling."""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import EmailMessage, sanitize_address
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

IDLE_SECONDS = 10.0  # servers drop idle clients; reopen rather than risk a stale socket

Settle = Callable[[Any, BaseException | None], None]


@dataclass(frozen=True)
class Envelope:
    """A message encoded for SMTP: envelope sender, recipients and the DATA bytes."""

    message: EmailMessage
    sender: str
    recipients: list[str]
    data: bytes


class MailSession:
    """A mail backend kept open between jobs of one worker (only for SMTP; others per job)."""

    def __init__(self) -> None:
        self._backend: BaseEmailBackend | None = None
        self._used_at = 0.0
        self._sender: ThreadPoolExecutor | None = None

    def _open(self) -> BaseEmailBackend:
        backend = get_connection(fail_silently=False)
        backend.open()
        self._backend = backend
        return backend

    def backend(self) -> BaseEmailBackend:
        if self._backend is not None and time.monotonic() - self._used_at > IDLE_SECONDS:
            self.close()
        return self._backend or self._open()

    def encode(self, message: EmailMessage) -> EmailMessage | Envelope:
        """The message as it goes on the wire, for SMTP (other backends take the message itself).

        Done before the previous message's reply is awaited, so the encoding overlaps the wire
        too. A message that cannot be encoded is returned as it is; prepare() raises its error.
        """
        if not _smtp_configured():
            return message
        encoding = message.encoding or settings.DEFAULT_CHARSET
        try:
            return Envelope(
                message=message,
                sender=_sender(message.from_email, encoding),
                recipients=[_sanitize(address, encoding) for address in message.recipients()],
                data=encode(message),
            )
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
            envelope = item if isinstance(item, Envelope) else self.encode(item)
            if not isinstance(envelope, Envelope):
                encode(envelope)  # raises the encoding error for this recipient
                raise RuntimeError("the message could not be encoded")
            wire = backend.connection
            send = partial(wire.sendmail, envelope.sender, envelope.recipients, envelope.data)
            return _capture(send), settings.MAIL_SEND_OVERLAP
        message = item.message if isinstance(item, Envelope) else item
        return _capture(lambda: _deliver(backend, message)), False

    def sent(self, error: BaseException | None) -> None:
        """Account for a finished send: keep the connection, or drop it after ``error``."""
        if error is not None:
            self.close()
        else:
            self._used_at = time.monotonic()

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

    def __enter__(self) -> MailSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.end_job()


@lru_cache(maxsize=4)
def _smtp_backend_class(path: str) -> bool:
    return issubclass(import_string(path), SmtpBackend)


def _smtp_configured() -> bool:
    """Whether the configured backend speaks SMTP (asked without touching a connection in use)."""
    return _smtp_backend_class(settings.EMAIL_BACKEND)


def encode(message: EmailMessage) -> bytes:
    """The message as SMTP DATA, as Django's backend sends it, with each MIME boundary set here.

    Why: left unset, the email package draws a boundary and compiles a regular expression
    from it to search the body for it, once per message: a tenth of a mail's CPU (measured).
    A random 128-bit boundary cannot occur in a body by chance, and no body sees it before.
    """
    mime = message.message()
    for part in mime.walk():
        if part.is_multipart() and part.get_boundary() is None:
            part.set_boundary(f"=_rm{secrets.token_hex(16)}")
    return mime.as_bytes(linesep="\r\n")


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
            self._session.close()
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
