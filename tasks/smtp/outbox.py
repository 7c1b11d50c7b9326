"""The Outbox: sends on the session's helper thread while the caller prepares the next message."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from django.core.mail.message import EmailMessage

from tasks.smtp.connection import MailSession
from tasks.smtp.encoding import Envelope

# One logger for the package, named as before the split: log records keep logger "tasks.smtp".
logger = logging.getLogger("tasks.smtp")


Settle = Callable[[Any, BaseException | None], None]


class Outbox:
    """Sends over the session's connection while the caller prepares the next message.

    Why: an SMTP send on one connection is mostly waiting for the server's replies (two round
    trips pipelined, four without: about 1 ms on loopback, far more to a distant relay), and
    rendering plus MIME-encoding the next message is about 0.6 ms of CPU; done one after the
    other they cap a worker well below the connection's limit. Here the
    wire work runs in the session's helper thread. At most one message is on the wire, and the
    caller learns its outcome through ``settle(key, error)`` (in the caller's thread) before the
    next one is started, so "send, record, then the next" holds as in a plain loop: a caller
    that stops after an error never has a second message out. The session says whether the
    thread is used at all (MailSession.overlap: not while the host's cores are too few for every
    worker's two threads); without it each send runs in the caller's thread, in the same order.
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
        if threaded and self._session.overlap():
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
