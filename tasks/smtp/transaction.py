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

transaction_steps() is the same transaction cut at each wait for the relay: it pauses (yields)
right after it has written to the wire, before it reads the replies. A worker renders and encodes
its next message in those pauses, in its one thread, while the relay answers (tasks.smtp.Outbox).
"""

from __future__ import annotations

import contextlib
import re
import smtplib
from collections.abc import Generator, Sequence
from typing import cast

from django.conf import settings

Refused = dict[str, tuple[int, bytes]]
Steps = Generator[None, None, Refused]  # pauses after each write to the wire; returns the refused recipients

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
    sending = Sending(transaction_steps(wire, sender, recipients, data, mail_options))
    error = sending.finish()
    if error is not None:
        raise error
    return cast(Refused, sending.result)


class Sending:
    """One message's send, advanced a step at a time (each step ends at a wait for the relay) or to its end.

    Its error, if any, is kept rather than raised: the caller classifies it (tasks.mail.is_permanent).
    """

    def __init__(self, steps: Generator[None, None, object]) -> None:
        self._steps = steps
        self.done = False
        self.error: BaseException | None = None
        self.result: object = None  # what the send returned (a transaction: the refused recipients)

    def step(self) -> None:
        """Go on to the next wait for the relay (or the end)."""
        if self.done:
            return
        try:
            next(self._steps)
        except StopIteration as end:
            self.result, self.done = end.value, True
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which classifies it
            self.error, self.done = exc, True

    def finish(self) -> BaseException | None:
        """Go on to the end (each wait bounded by EMAIL_TIMEOUT); the error, if any."""
        for _ in range(8):  # a transaction pauses twice at most
            if self.done:
                break
            self.step()
        if not self.done:
            self.error, self.done = RuntimeError("a mail transaction did not end"), True
        return self.error


def transaction_steps(
    wire: smtplib.SMTP, sender: str, recipients: Sequence[str], data: bytes, mail_options: Sequence[str] = ()
) -> Steps:
    """send_transaction, pausing after each write to the wire until the caller advances it (next())."""
    wire.ehlo_or_helo_if_needed()
    pipelining = settings.EMAIL_PIPELINING and wire.does_esmtp and wire.has_extn("pipelining")
    if not pipelining or len(recipients) > PIPELINE_MAX_RECIPIENTS:
        return wire.sendmail(sender, list(recipients), data, mail_options=list(mail_options))
    return (yield from _pipelined(wire, sender, list(recipients), data, list(mail_options)))


def _pipelined(wire: smtplib.SMTP, sender: str, recipients: list[str], data: bytes, mail_options: list[str]) -> Steps:
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
    wire.send("".join(f"{command}\r\n" for command in commands))
    yield  # the group is on the wire; its replies come while the caller works

    code, reply = wire.getreply()
    if code == 421:
        wire.close()
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    sender_refused = (code, reply) if code != 250 else None
    refused: Refused = {}
    for recipient in recipients:
        code, reply = wire.getreply()
        if code not in (250, 251):
            refused[recipient] = (code, reply)
        if code == 421:
            wire.close()
            raise _refusal(sender, sender_refused, refused)
    data_code, data_reply = wire.getreply()

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
    wire.send(body + b".\r\n")
    yield  # the message is on the wire; the relay's verdict comes while the caller works

    code, reply = wire.getreply()
    if code != 250:
        _give_up(wire, code)
        raise smtplib.SMTPDataError(code, reply)
    return refused


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
