"""One SMTP mail transaction, pipelined (RFC 2920) where the relay announces PIPELINING.

smtplib's sendmail waits for a reply to each of MAIL FROM, every RCPT TO and DATA before it
sends the next: four round trips for a one-recipient message. Every production MTA (Postfix,
Exim, Amazon SES, Gmail) announces PIPELINING, which lets the client send MAIL FROM, the RCPT
TOs and DATA as one group and read their replies together: two round trips (the group, then the
message), whatever the number of recipients. On loopback that is a third less time per mail; to a
relay 20 ms away it halves it. (A mail to more than PIPELINE_MAX_RECIPIENTS goes unpipelined.)

The outcome is smtplib's, answer for answer: the same refused-recipients dict, the same
exceptions (SMTPSenderRefused, SMTPRecipientsRefused, SMTPDataError) with the same codes, a
421 closing the connection, RSET after a refusal. A relay that does not announce PIPELINING (or
EMAIL_PIPELINING=0) gets smtplib's sendmail itself.

transaction_steps() is the same transaction cut at each wait for the relay: it yields the bytes
it wants written and reads the replies to them when it is resumed. Whoever drives it writes them:
send_transaction at once; the worker's Outbox (tasks.smtp.Outbox) puts the message of one
transaction and the commands of the next into one write, and renders its next message while the
relay answers.
"""

from __future__ import annotations

import contextlib
import re
import select
import smtplib
from collections.abc import Callable, Generator, Sequence
from typing import cast

from django.conf import settings

Refused = dict[str, tuple[int, bytes]]
Steps = Generator[bytes, None, Refused]  # yields what to write; reads its replies when resumed; returns the refused

# Recipients above which a transaction is not pipelined. Why: the client writes the whole group
# before it reads a reply; a group so long that the relay's replies fill our receive buffer while
# the relay waits to write them would deadlock (RFC 2920, section 3.1). A hundred replies are a few
# kilobytes, far below any socket buffer; reservemail's mails have one recipient each.
PIPELINE_MAX_RECIPIENTS = 100

_LEADING_DOT = re.compile(rb"(?m)^\.")


def send_transaction(
    wire: smtplib.SMTP, sender: str, recipients: Sequence[str], data: bytes, mail_options: Sequence[str] = ()
) -> Refused:
    """Send ``data`` from ``sender`` to ``recipients``; return the recipients the relay refused (as sendmail does)."""
    sending = Sending(transaction_steps(wire, sender, recipients, data, mail_options), wire)
    error = sending.finish()
    if error is not None:
        raise error
    return cast(Refused, sending.result)


class ReadHook:
    """Runs ``action`` once, while armed, right before a read of the relay's replies would wait.

    Why: the Outbox reads the verdict on one message and the replies to the next commands in one
    go; when the relay is slow with the latter, the caller records the former before waiting. A
    reply that comes within READ_GRACE is not slow: the relay often answers the commands a moment
    after the verdict, and without the grace 5-7% of mails cost an extra transaction (measured:
    743 of 10,000, against 1 with it; docs/performance.md).
    """

    def __init__(self, action: Callable[[], None]) -> None:
        self.action = action
        self.armed = False

    def before(self, wire: smtplib.SMTP) -> None:
        if self.armed and _would_block(wire, READ_GRACE):
            self.armed = False
            self.action()


READ_GRACE = 0.002  # seconds a reply may take and still be read before the hook runs


def _would_block(wire: smtplib.SMTP | None, grace: float) -> bool:
    """Whether reading the next reply from ``wire`` would wait for the relay longer than ``grace`` seconds."""
    sock, file = getattr(wire, "sock", None), getattr(wire, "file", None)
    if sock is None or file is None:
        return False  # not connected, or nothing read yet: the read fails or is the first one
    pending = getattr(sock, "pending", None)  # TLS: bytes decrypted already
    if pending is not None and pending():
        return False
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        if file.peek(1):  # what the reader buffered already, or what arrived; an empty socket returns at once
            return False
    except OSError:  # TLS with nothing decrypted yet (want-read), or a broken socket that the read will report
        pass
    finally:
        sock.settimeout(timeout)
    return not select.select([sock], [], [], grace)[0]


class Sending:
    """One message's send, advanced a step at a time, or to its end.

    A step resumes the transaction: it reads the replies to what was written last and stops at the
    next write, whose bytes it leaves in ``out`` for the caller to write (write(), or with other
    bytes before them). Its error, if any, is kept rather than raised: the caller classifies it
    (tasks.mail.is_permanent).
    """

    def __init__(self, steps: Generator[bytes, None, object], wire: smtplib.SMTP | None = None) -> None:
        self._steps = steps
        self.wire = wire  # where ``out`` goes (None: a backend that sends in one step)
        self.out: bytes | None = None  # written by the caller before the next step
        self.done = False
        self.error: BaseException | None = None
        self.result: object = None  # what the send returned (a transaction: the refused recipients)

    def step(self) -> None:
        """Read the replies to the last write and go on to the next write (its bytes in ``out``) or the end."""
        if self.done:
            return
        try:
            self.out = next(self._steps)
        except StopIteration as end:
            self.result, self.done, self.out = end.value, True, None
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which classifies it
            self.fail(exc)

    def write(self, prefix: bytes = b"") -> None:
        """Write ``prefix`` (another message's bytes, already due) and ``out`` in one write to the wire."""
        data, self.out = prefix + (self.out or b""), None
        if self.wire is None or not data:
            return
        try:
            self.wire.send(data)
        except Exception as exc:  # noqa: BLE001 - smtplib closed the connection: this send failed
            self.fail(exc)

    def fail(self, error: BaseException) -> None:
        """End this send with ``error`` (a broken connection, or the caller gave it up)."""
        self._steps.close()
        self.error, self.done, self.out = error, True, None

    def finish(self) -> BaseException | None:
        """Go on to the end, writing each step's bytes at once (each read bounded by EMAIL_TIMEOUT); the error."""
        for _ in range(12):  # a transaction writes twice at most
            if self.done:
                break
            if self.out is not None:
                self.write()
            else:
                self.step()
        if not self.done:
            self.fail(RuntimeError("a mail transaction did not end"))
        return self.error


def transaction_steps(
    wire: smtplib.SMTP,
    sender: str,
    recipients: Sequence[str],
    data: bytes,
    mail_options: Sequence[str] = (),
    *,
    queued_after: bool = False,
    before_read: ReadHook | None = None,
) -> Steps:
    """send_transaction as steps: yields each write to the wire for the caller to make (see Sending).

    ``queued_after``: the caller writes the next transaction's commands right after this message, so
    a refused message is not followed by RSET (the relay ends a transaction with its verdict on the
    message; an RSET would land after the queued commands and be read as the next message's text).
    ``before_read`` runs before each read of a reply to the commands.
    """
    wire.ehlo_or_helo_if_needed()
    pipelining = settings.EMAIL_PIPELINING and wire.does_esmtp and wire.has_extn("pipelining")
    if not pipelining or len(recipients) > PIPELINE_MAX_RECIPIENTS:
        return wire.sendmail(sender, list(recipients), data, mail_options=list(mail_options))
    return (yield from _pipelined(wire, sender, list(recipients), data, list(mail_options), queued_after, before_read))


def _pipelined(  # noqa: PLR0913 - one transaction's parts
    wire: smtplib.SMTP,
    sender: str,
    recipients: list[str],
    data: bytes,
    mail_options: list[str],
    queued_after: bool,
    before_read: ReadHook | None,
) -> Steps:
    options = ([f"size={len(data)}"] if wire.has_extn("size") else []) + mail_options
    if any(option.lower() == "smtputf8" for option in options):
        if not wire.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError("SMTPUTF8 not supported by server")
        wire.command_encoding = "utf-8"  # as smtplib's mail() does: the addresses may be UTF-8
    commands = [f"MAIL FROM:{smtplib.quoteaddr(sender)}" + "".join(f" {option}" for option in options)]
    commands += [f"RCPT TO:{smtplib.quoteaddr(recipient)}" for recipient in recipients]
    commands.append("DATA")
    if any("\r" in command or "\n" in command for command in commands):
        raise ValueError("command and arguments contain prohibited newline characters")
    yield "".join(f"{command}\r\n" for command in commands).encode(wire.command_encoding)  # one group

    code, reply = _reply(wire, before_read)
    if code == 421:
        wire.close()
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    sender_refused = (code, reply) if code != 250 else None
    refused: Refused = {}
    for recipient in recipients:
        code, reply = _reply(wire, before_read)
        if code not in (250, 251):
            refused[recipient] = (code, reply)
        if code == 421:
            wire.close()
            raise _refusal(sender, sender_refused, refused)
    data_code, data_reply = _reply(wire, before_read)

    if sender_refused is not None or len(refused) == len(recipients):
        _end_empty_message(wire, data_code)
        _rset(wire)
        raise _refusal(sender, sender_refused, refused)
    if data_code != 354:
        _give_up(wire, data_code)
        raise smtplib.SMTPDataError(data_code, data_reply)
    body = _LEADING_DOT.sub(b"..", data)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    yield body + b".\r\n"

    code, reply = wire.getreply()
    if code != 250:
        if code == 421 or not queued_after:
            _give_up(wire, code)
        raise smtplib.SMTPDataError(code, reply)
    return refused


def _reply(wire: smtplib.SMTP, before_read: ReadHook | None) -> tuple[int, bytes]:
    if before_read is not None:
        before_read.before(wire)
    return wire.getreply()


def _refusal(sender: str, sender_refused: tuple[int, bytes] | None, refused: Refused) -> smtplib.SMTPException:
    """The error sendmail raises: the sender's refusal if MAIL FROM failed (it stops there), else the recipients'."""
    if sender_refused is not None:
        return smtplib.SMTPSenderRefused(*sender_refused, sender)
    return smtplib.SMTPRecipientsRefused(refused)


def _end_empty_message(wire: smtplib.SMTP, data_code: int) -> None:
    """A relay that accepted DATA although MAIL FROM or every RCPT TO failed gets an empty message ended (RFC 2920)."""
    if data_code == 354:
        wire.send(b".\r\n")
        wire.getreply()


def _give_up(wire: smtplib.SMTP, code: int) -> None:
    if code == 421:
        wire.close()
    else:
        _rset(wire)


def _rset(wire: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPServerDisconnected):
        wire.rset()
