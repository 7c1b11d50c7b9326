"""The Outbox: one write to the relay per mail, and the next message prepared while the relay answers."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.mail.message import EmailMessage

from tasks.smtp.connection import MailSession
from tasks.smtp.encoding import Envelope
from tasks.smtp.transaction import ReadHook, Sending

# One logger for the package, named as before the split: log records keep logger "tasks.smtp".
logger = logging.getLogger("tasks.smtp")


Settle = Callable[[Any, BaseException | None], None]


class NotReleased(Exception):
    """The caller gave up a message whose text it had not released: nothing of it was written."""


class Outbox:
    """Sends over the session's connection while the caller prepares the next message, in one thread.

    Why: a pipelined mail transaction (tasks.smtp.transaction) is two writes to the relay: the
    commands (MAIL FROM, RCPT TO, DATA), then the message. Each write costs a system call and a
    wake-up of the relay, and each wait for its replies is time the worker spends idle unless it
    has work to fill it with. RFC 2920 lets the message of one transaction and the commands of the
    next go in one write, so the Outbox makes one write per mail: the previous message's text and
    the next message's commands. The caller renders and encodes the message after that while the
    relay answers (measured: see docs/performance.md).

    The order, for the caller (tasks.delivery.send):

    - encode() the next message; collect() reads the relay's replies to the last write: the
      verdict on the message written (settled through ``settle(key, error)``) and the replies to
      the commands, after which that message is *held*: the relay waits for its text.
    - The caller checks that the held message is still its to send (``holding``), then start()s
      the next one: the held text and the next commands go out together. Or it release()s the
      held text alone, or drop()s it (never written: the relay gets no message).

    At most one message is on the wire (written, verdict not read) and at most one held, so a
    caller that stops after an error has at most one message out. With MAIL_SEND_OVERLAP off, a
    relay that is not pipelined or a backend other than SMTP, start() sends to the end and settles
    before it returns.
    """

    def __init__(self, session: MailSession, settle: Settle, on_wait: Callable[[], None] | None = None) -> None:
        self._session = session
        self._settle = settle
        self._before_wait = ReadHook(on_wait) if on_wait is not None else None
        self._verdict: tuple[Any, Sending] | None = None  # its text written; its verdict not read yet
        self._commands: tuple[Any, Sending] | None = None  # its commands written; their replies not read yet
        self._held: tuple[Any, Sending] | None = None  # its commands answered; its text not written yet

    @property
    def holding(self) -> Any:
        """The key of the held message (the relay waits for its text), or None."""
        return self._held[0] if self._held is not None else None

    def encode(self, message: EmailMessage) -> EmailMessage | Envelope:
        """Encode ``message`` for the wire now (while the relay answers the last write)."""
        return self._session.encode(message)

    def collect(self) -> None:
        """Read the replies to the last write (each bounded by EMAIL_TIMEOUT): settle its message, hold the next.

        The verdict comes first and is settled at once. If the replies to the next commands are not
        in yet (a slow relay), ``on_wait`` runs before waiting for them, so the caller can record
        that outcome first: a worker killed while the relay dawdles has nothing settled unrecorded.
        """
        verdict, self._verdict = self._verdict, None
        commands, self._commands = self._commands, None
        if verdict is not None:
            verdict[1].step()  # the relay's verdict on the text: the transaction ends
            error = verdict[1].error
            if error is not None and commands is not None and not _transaction_ended(error, verdict[1]):
                if verdict[1].wire is not None:
                    verdict[1].wire.close()  # no QUIT: the relay may be reading the next message's text
                commands[1].fail(smtplib.SMTPServerDisconnected(f"connection lost with the previous message: {error}"))
            self._finish(verdict[0], error, keep_open=commands is not None and not commands[1].done)
        if commands is None:
            return
        if not commands[1].done:
            hook = self._before_wait
            if hook is not None:
                hook.armed = verdict is not None  # an outcome was just settled: record it before any wait
            commands[1].step()  # the replies to MAIL FROM, RCPT TO and DATA; its text is next
            if hook is not None:
                hook.armed = False
        if commands[1].done:  # refused, or the connection broke: settled now
            self._finish(commands[0], commands[1].error)
        else:
            self._held = commands

    def start(self, key: Any, message: EmailMessage | Envelope) -> None:
        """Write the held text (the caller has checked it is still to go) and ``message``'s commands in one write."""
        self.collect()
        overlap = settings.MAIL_SEND_OVERLAP
        if not overlap:
            self.flush()  # one message at a time: nothing held or unanswered before this one
        try:
            sending = self._session.prepare(
                message, queued_after=overlap, before_read=self._before_wait, busy=self._held is not None
            )
        except Exception as exc:  # noqa: BLE001 - a connection that cannot be opened fails this send
            self.flush()
            self._finish(key, exc)
            return
        if self._held is not None and self._held[1].wire is not sending.wire:
            self.drop(smtplib.SMTPServerDisconnected("the connection was reopened before the message's text"))
        sending.step()  # to its first write, or to the end (sent whole: not pipelined, not SMTP)
        if sending.done or not overlap:
            self._finish(key, sending.finish())
            return
        held, self._held = self._held, None
        sending.write((held[1].out or b"") if held is not None else b"")
        if held is not None:
            held[1].out = None
            if sending.done:  # the write failed: neither went out whole
                held[1].fail(sending.error or RuntimeError("write failed"))
                self._finish(held[0], held[1].error)
            else:
                self._verdict = held
        if sending.done:
            self._finish(key, sending.error)
        else:
            self._commands = (key, sending)

    def release(self) -> None:
        """Write the held text alone (the caller has checked it is still to go)."""
        if self._held is None:
            return
        key, sending = self._held
        self._held = None
        sending.write()
        if sending.done:
            self._finish(key, sending.error)
        else:
            self._verdict = (key, sending)

    def drop(self, error: BaseException) -> None:
        """Give up the held message without writing its text; it is settled with ``error``.

        The connection is closed at once, without QUIT: the relay is reading a message's text, and
        would take the QUIT as part of it. Closed mid-text, the relay discards the message.
        """
        if self._held is None:
            return
        key, sending = self._held
        self._held = None
        if sending.wire is not None:
            sending.wire.close()
        sending.fail(error)
        self._finish(key, error)

    def flush(self) -> None:
        """Read every reply due, write a held text, and read its verdict: nothing is left on the wire."""
        self.collect()
        self.release()
        self.collect()

    def _finish(self, key: Any, error: BaseException | None, *, keep_open: bool = False) -> None:
        self._session.sent(error, keep_open=keep_open)
        self._settle(key, error)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: Any) -> None:
        if exc_type is None:
            self.flush()
            return
        try:  # already failing: still record what the written messages did, and write nothing more
            self.collect()
            self.drop(NotReleased("the send loop failed before the message's text was released"))
        except Exception as exc:  # noqa: BLE001 - the original error is the one to raise
            logger.error("could not record the last send after an error: %s", exc)


def _transaction_ended(error: BaseException, sending: Sending) -> bool:
    """Whether the relay refused the text but kept the session (a 4xx or 5xx verdict, not 421, socket open)."""
    open_wire = sending.wire is not None and getattr(sending.wire, "sock", None) is not None
    return open_wire and isinstance(error, smtplib.SMTPDataError) and error.smtp_code != 421
