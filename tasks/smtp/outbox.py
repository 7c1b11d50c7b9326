"""The Outbox: the caller prepares the next message while the relay answers the current one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.mail.message import EmailMessage

from tasks.smtp.connection import MailSession
from tasks.smtp.encoding import Envelope
from tasks.smtp.transaction import Sending

# One logger for the package, named as before the split: log records keep logger "tasks.smtp".
logger = logging.getLogger("tasks.smtp")


Settle = Callable[[Any, BaseException | None], None]


class Outbox:
    """Sends over the session's connection while the caller prepares the next message, in one thread.

    Why: an SMTP send on one connection is mostly waiting for the server's replies (two round
    trips pipelined: about 0.5 ms on loopback, far more to a distant relay), and rendering plus
    MIME-encoding the next message is about 0.6 ms of CPU; done one after the other they cap a
    worker well below the connection's limit. The transaction pauses after each write to the wire
    (tasks.smtp.transaction): start() writes MAIL FROM, RCPT TO and DATA and returns; the caller
    renders the next message; encode() builds its MIME tree, then step() reads the relay's replies
    and writes the current message, then encode() writes the next one out; the next start() or
    flush() reads the verdict. So both waits for the relay are filled with the caller's work, about
    evenly (measured: a 1-worker burst 544-601 -> 651-676 mails/s against stepping before the
    encoding instead of inside it). No second thread: one on the wire and one
    rendering cost a GIL hand-off per reply, more CPU than the overlap saved on a busy host
    (measured: see docs/performance.md). At most one message is on the wire, and the caller
    learns its outcome through ``settle(key, error)`` before the next one is started, so "send,
    record, then the next" holds as in a plain loop: a caller that stops after an error never has
    a second message out. With MAIL_SEND_OVERLAP off, a relay that is not pipelined or a backend
    other than SMTP, start() sends to the end and settles before it returns.
    """

    def __init__(self, session: MailSession, settle: Settle) -> None:
        self._session = session
        self._settle = settle
        self._inflight: tuple[Any, Sending] | None = None

    def encode(self, message: EmailMessage) -> EmailMessage | Envelope:
        """Encode ``message`` for the wire now, advancing the previous one on the wire half way through."""
        return self._session.encode(message, midway=self.step)

    def start(self, key: Any, message: EmailMessage | Envelope) -> None:
        """Settle the message on the wire, then put ``message`` there."""
        self.flush()
        try:
            sending = self._session.prepare(message)
        except Exception as exc:  # noqa: BLE001 - a connection that cannot be opened fails this send
            self._finish(key, exc)
            return
        overlap = settings.MAIL_SEND_OVERLAP
        if overlap:
            sending.step()  # its first commands go out; the caller works while the relay answers
        if sending.done or not overlap:  # sent whole (not pipelined, not SMTP) or no overlap
            self._finish(key, sending.finish())
            return
        self._inflight = (key, sending)

    def step(self) -> None:
        """Advance the message on the wire to its next wait for the relay (whose replies are in by now)."""
        if self._inflight is not None:
            self._inflight[1].step()

    def flush(self) -> None:
        """Wait for the message on the wire (each read bounded by EMAIL_TIMEOUT) and settle it."""
        if self._inflight is not None:
            key, sending = self._inflight
            self._inflight = None
            self._finish(key, sending.finish())

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
