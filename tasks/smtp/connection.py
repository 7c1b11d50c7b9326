"""One mail connection per worker process, reused across jobs and reopened after errors or idling.

The connection is closed with QUIT after EMAIL_IDLE_SECONDS without a send (the worker's
maintenance step calls close_if_idle()) and when the worker stops; one idle for more than
EMAIL_NOOP_SECONDS is checked with NOOP before reuse. A relay refusal (tasks.relay) is recorded
for health and cleared by the first send that goes through after a connection is opened.
"""

from __future__ import annotations

import logging
import smtplib
import time
from collections.abc import Generator
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.smtp import EmailBackend as SmtpBackend
from django.core.mail.message import EmailMessage
from django.utils import timezone
from django.utils.module_loading import import_string

from tasks import scheduler
from tasks.mail import SmtpUtf8Unsupported, describe
from tasks.relay import is_relay_refused
from tasks.smtp.encoding import Envelope, _envelope, _for_relay
from tasks.smtp.transaction import ReadHook, Sending, transaction_steps

# One logger for the package, named as before the split: log records keep logger "tasks.smtp".
logger = logging.getLogger("tasks.smtp")


# After the relay refused us (certificate, TLS, login), sends within this many seconds fail with the
# same error without connecting: a backlog of pending tasks costs one TLS handshake per worker per
# hold-off, not one per task. A restarted worker (after fixing the settings) connects at once.
REFUSAL_HOLD_OFF = 5.0


class MailSession:
    """A mail backend kept open between jobs of one worker (only for SMTP; others per job)."""

    def __init__(self) -> None:
        self._backend: BaseEmailBackend | None = None
        self._used_at = 0.0
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

    def backend(self, *, busy: bool = False) -> BaseEmailBackend:
        """The open backend: a connection idle too long is closed and one idle a while checked first.

        ``busy``: a message is half sent on the connection (tasks.smtp.Outbox holds its text), so
        it is not idle, whatever the time since the last send; a NOOP now would be read as text.
        """
        if self._backend is None and self._refused is not None:
            error, at = self._refused
            if time.monotonic() - at < REFUSAL_HOLD_OFF:
                raise error
        if self._backend is not None and not busy:
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

    def encodes(self) -> bool:
        """Whether encode() gives envelopes: the configured backend speaks SMTP."""
        return _smtp_configured()

    def encode(self, message: EmailMessage) -> EmailMessage | Envelope:
        """The message as it goes on the wire, for SMTP (other backends take the message itself).

        Done while the previous message waits for the relay. A message that cannot be encoded is
        returned as it is; prepare() raises its error.
        """
        if not _smtp_configured():
            return message
        try:
            return _envelope(message)
        except Exception:  # noqa: BLE001 - prepare() encodes again and reports the error as the send's
            return message

    def prepare(
        self,
        item: EmailMessage | Envelope,
        *,
        queued_after: bool = False,
        before_read: ReadHook | None = None,
        busy: bool = False,
    ) -> Sending:
        """Return ``item``'s send, not yet begun.

        For SMTP the message is encoded already (see encode()), and the send is only the wire
        work: one mail transaction, pipelined where the relay allows, in steps that each end at a
        write to the wire (tasks.smtp.transaction, which gets ``queued_after`` and ``before_read``).
        Other backends (file, locmem, console) send in one step. ``busy``: see backend(). Opening a
        connection that fails raises here.
        """
        backend = self.backend(busy=busy)
        self._used_at = time.monotonic()  # in use from here: the next message's check must not NOOP it
        if isinstance(backend, SmtpBackend) and backend.connection is not None:
            envelope = item if isinstance(item, Envelope) else _envelope(item)  # raises an encoding error
            wire = backend.connection
            data, options = _for_relay(envelope, wire)
            steps = transaction_steps(
                wire,
                envelope.sender,
                envelope.recipients,
                data,
                options,
                queued_after=queued_after,
                before_read=before_read,
            )
            return Sending(steps, wire)
        message = item.message if isinstance(item, Envelope) else item
        return Sending(_deliver(backend, message))

    def sent(self, error: BaseException | None, *, keep_open: bool = False) -> None:
        """Account for a finished send: keep the connection, or drop it after ``error``.

        ``keep_open``: the relay refused the message's text but kept the session, and the next
        transaction's commands are on the wire already (tasks.smtp.Outbox). A relay refusal is
        recorded for health; the first send through a new connection clears it.
        """
        if isinstance(error, SmtpUtf8Unsupported):
            return  # refused before the wire: the connection is as good as it was
        if error is not None and keep_open and not is_relay_refused(error):
            return
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
        """The worker stops: QUIT the relay and forget a refusal (a new start retries at once)."""
        self.close()
        self.refusal, self._refused = None, None

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


def _deliver(backend: BaseEmailBackend, message: EmailMessage) -> Generator[bytes, None, None]:
    """A non-SMTP backend's send: one step."""
    if not backend.send_messages([message]):
        raise RuntimeError("the mail backend accepted nothing")
    yield from ()


session = MailSession()
