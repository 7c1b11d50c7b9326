"""The pipelined mail transaction (tasks.smtp.transaction) against real SMTP servers on loopback.

Two claims: it sends MAIL FROM, RCPT TO and DATA as one group where the relay announces
PIPELINING (a server that answers nothing before it holds the whole group proves it), and its
outcome is smtplib's sendmail's, answer for answer: the same refused recipients, the same
exceptions and codes, the same messages delivered, the connection usable or closed alike.
"""

from __future__ import annotations

import smtplib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tasks.smtp.transaction import PIPELINE_MAX_RECIPIENTS, send_transaction
from tests.harness import SinkHandler, SmtpSink, free_port, wait_until

SENDER = "news@reservemail.example"
ANN, BOB = "ann@example.com", "bob@example.com"
BODY = b"From: news@reservemail.example\r\nTo: ann@example.com\r\nSubject: hi\r\n\r\nhello\r\n.starts with a dot\r\n"


class Handler(SinkHandler):
    """The test sink's handler, which can also refuse a sender (MAIL FROM)."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_sender: dict[str, str] = {}

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: ANN001, ANN201
        if address in self.refuse_sender:
            return self.refuse_sender[address]
        return await super().handle_MAIL(server, session, envelope, address, mail_options)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    server = SmtpSink(pipelining=True, handler=Handler()).start()
    yield server
    server.stop()


def _outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("returned", call())
    except smtplib.SMTPSenderRefused as exc:
        return (type(exc).__name__, exc.smtp_code, exc.sender)
    except smtplib.SMTPRecipientsRefused as exc:
        return (type(exc).__name__, {k: v[0] for k, v in exc.recipients.items()})
    except smtplib.SMTPResponseException as exc:
        return (type(exc).__name__, exc.smtp_code)


SCENARIOS: dict[str, tuple[dict[str, Any], list[str], bytes]] = {
    "accepted": ({}, [ANN], BODY),
    "no final line break": ({}, [ANN], BODY.rstrip(b"\r\n")),
    "one of two refused": ({"refuse": {BOB: "550 no such user"}}, [ANN, BOB], BODY),
    "all refused": ({"refuse": {ANN: "550 no such user", BOB: "450 try later"}}, [ANN, BOB], BODY),
    "sender refused": ({"refuse_sender": {SENDER: "553 sender not allowed"}}, [ANN], BODY),
    "message refused": ({"fail_queue": ["554 spam"]}, [ANN, BOB], BODY),
    "message deferred": ({"fail_queue": ["451 later"]}, [ANN], BODY),
    "421 to a recipient": ({"refuse": {BOB: "421 closing"}}, [ANN, BOB], BODY),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_pipelined_outcome_is_sendmails(sink: SmtpSink, name: str) -> None:
    """Each outcome (return, exception, code), what arrived, and the connection's state match sendmail's."""
    knobs, recipients, body = SCENARIOS[name]
    results = []
    for send in ("sendmail", "pipelined"):
        sink.reset()
        for knob, value in knobs.items():
            current = getattr(sink.handler, knob)
            current.update(value) if isinstance(current, dict) else current.extend(value)
        wire = smtplib.SMTP("127.0.0.1", sink.port, timeout=10)
        wire.ehlo()
        assert wire.has_extn("pipelining")
        if send == "sendmail":
            outcome = _outcome(lambda w=wire: w.sendmail(SENDER, recipients, body))
        else:
            outcome = _outcome(lambda w=wire: send_transaction(w, SENDER, recipients, body))
        usable = wire.sock is not None and wire.noop()[0] == 250
        if wire.sock is not None:
            wire.quit()
        arrived = [(r.rcpt_tos, r.data) for r in sink.received]
        results.append((outcome, arrived, usable))
    assert results[0] == results[1]
    if name == "accepted":
        assert results[1][1] == [([ANN], BODY)]  # dot-stuffing undone by the server: the body as sent


def test_pipelined_then_more_on_one_connection(sink: SmtpSink) -> None:
    """After refusals the connection is reset and carries the next transactions."""
    sink.handler.refuse[BOB] = "550 no such user"
    wire = smtplib.SMTP("127.0.0.1", sink.port, timeout=10)
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send_transaction(wire, SENDER, [BOB], BODY)
    for _ in range(3):
        assert send_transaction(wire, SENDER, [ANN], BODY) == {}
    wire.quit()
    assert [r.rcpt_tos for r in sink.received] == [[ANN]] * 3


class GroupOnlyServer:
    """A bare SMTP server that answers no command of a transaction before it holds the whole group.

    A client that waits for MAIL FROM's reply before sending RCPT TO never gets one: the server
    gives up after ``patience`` seconds and closes the connection.
    """

    def __init__(self, *, patience: float = 2.0, script: list[bytes] | None = None) -> None:
        self.port = free_port()
        self.patience = patience
        self.script = script  # the replies to the first group, instead of accepting it
        self.bodies: list[bytes] = []  # what followed a scripted 354
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.groups: list[bytes] = []  # each transaction's commands, as first received whole
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> GroupOnlyServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self.thread.join(timeout=10)

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(self.patience)
            conn.sendall(b"220 strict\r\n")
            reader = _Lines(conn)
            try:
                self._session(conn, reader)
            except (TimeoutError, OSError):
                return

    def _session(self, conn: socket.socket, reader: _Lines) -> None:
        while True:
            line = reader.line()
            verb = line[:4].upper()
            if verb == b"EHLO":
                conn.sendall(b"250-strict\r\n250-PIPELINING\r\n250 SIZE 1000000\r\n")
            elif verb == b"MAIL":
                group = reader.until(b"DATA\r\n")  # nothing is answered before the group is whole
                self.groups.append(line + group)
                if self.script is not None:
                    script, self.script = self.script, None
                    conn.sendall(b"".join(script))
                    if any(reply.startswith(b"421") for reply in script):
                        return  # and close, as a relay does after 421
                    if script[-1].startswith(b"354"):
                        self.bodies.append(reader.until(b".\r\n"))
                        conn.sendall(b"554 no valid recipients\r\n")
                    continue
                rcpts = group.count(b"RCPT TO:")
                conn.sendall(b"250 sender ok\r\n" + b"250 rcpt ok\r\n" * rcpts + b"354 go on\r\n")
                reader.until(b"\r\n.\r\n")
                conn.sendall(b"250 queued\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 ok\r\n")


class _Lines:
    def __init__(self, conn: socket.socket) -> None:
        self.conn, self.buffer = conn, b""

    def until(self, end: bytes) -> bytes:
        for _ in range(10_000):  # bounded: each pass either returns or reads (which times out)
            at = self.buffer.find(end)
            if at >= 0:
                found, self.buffer = self.buffer[: at + len(end)], self.buffer[at + len(end) :]
                return found
            chunk = self.conn.recv(65536)
            if not chunk:
                raise OSError("client closed")
            self.buffer += chunk
        raise OSError("no end in sight")

    def line(self) -> bytes:
        return self.until(b"\r\n")


def test_group_goes_out_before_any_reply() -> None:
    """Against a server that answers only a whole group, the transaction succeeds (sendmail's could not)."""
    with GroupOnlyServer() as server:
        wire = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        assert send_transaction(wire, SENDER, [ANN, BOB], BODY) == {}
        assert send_transaction(wire, SENDER, [ANN], BODY) == {}
        wire.quit()
    assert [g.count(b"RCPT TO:") for g in server.groups] == [2, 1]
    assert server.groups[0].startswith(b"MAIL FROM:<news@reservemail.example> size=")


def test_421_after_a_refused_sender_reports_the_sender() -> None:
    """MAIL FROM refused, then 421: the sender's refusal (permanent), as sendmail, which stops at it, reports."""
    with GroupOnlyServer(script=[b"550 sender not allowed\r\n", b"421 closing\r\n"]) as server:
        wire = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send_transaction(wire, SENDER, [ANN], BODY)
    assert refused.value.smtp_code == 550
    assert wire.sock is None


def test_data_accepted_without_recipients_gets_an_empty_message() -> None:
    """A relay that answers DATA with 354 although every RCPT failed gets only the end of data, then RSET."""
    script = [b"250 ok\r\n", b"550 no such user\r\n", b"354 go on\r\n"]
    with GroupOnlyServer(script=script) as server:
        wire = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            send_transaction(wire, SENDER, [ANN], BODY)
        assert wire.noop()[0] == 250  # reset and still usable
        wire.quit()
    assert {k: v[0] for k, v in refused.value.recipients.items()} == {ANN: 550}
    assert server.bodies == [b".\r\n"]


def test_pipelining_can_be_turned_off(settings: Any) -> None:
    """EMAIL_PIPELINING=0 sends one command per round trip: the group-only server gives up on it."""
    settings.EMAIL_PIPELINING = False
    with GroupOnlyServer(patience=0.5) as server:
        wire = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            send_transaction(wire, SENDER, [ANN], BODY)
        wire.close()
    assert server.groups == []


def test_long_groups_are_not_pipelined() -> None:
    """Over PIPELINE_MAX_RECIPIENTS the commands go one by one: no group the relay's replies could deadlock."""
    recipients = [f"r{i}@example.com" for i in range(PIPELINE_MAX_RECIPIENTS + 1)]
    with GroupOnlyServer(patience=0.5) as server:
        wire = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            send_transaction(wire, SENDER, recipients, BODY)
        wire.close()
    assert server.groups == []


def test_many_recipients_pipelined_in_one_group(sink: SmtpSink) -> None:
    """Up to the limit, one group: every recipient refused or accepted as sendmail would report it."""
    recipients = [f"r{i}@example.com" for i in range(PIPELINE_MAX_RECIPIENTS)]
    sink.handler.refuse.update(dict.fromkeys(recipients[::2], "550 no such user"))
    wire = smtplib.SMTP("127.0.0.1", sink.port, timeout=10)
    refused = send_transaction(wire, SENDER, recipients, BODY)
    wire.quit()
    assert sorted(refused) == sorted(recipients[::2])
    assert [sorted(r.rcpt_tos) for r in sink.received] == [sorted(recipients[1::2])]


def test_no_pipelining_without_the_announcement() -> None:
    """A relay that does not announce PIPELINING gets one command per round trip (smtplib's sendmail)."""
    sink = SmtpSink(pipelining=False).start()
    try:
        wire = smtplib.SMTP("127.0.0.1", sink.port, timeout=10)
        wire.ehlo()
        assert not wire.has_extn("pipelining")
        assert send_transaction(wire, SENDER, [ANN], BODY) == {}
        wire.quit()
        wait_until(lambda: sink.received, timeout=5, what="the message")
    finally:
        sink.stop()
