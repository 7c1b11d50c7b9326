"""The Outbox: one write per mail (a text and the next commands), the next mail prepared meanwhile, one on the wire."""

from __future__ import annotations

import smtplib
import socket
import threading
import time

import pytest
from django.core import mail

from tasks.mail import new_message_id, render_message
from tasks.smtp import MailSession, NotReleased, Outbox
from tasks.smtp.transaction import _would_block
from tests.harness import SmtpSink, free_port


@pytest.fixture(autouse=True)
def _overlap_on(settings) -> None:  # noqa: ANN001
    settings.MAIL_SEND_OVERLAP = True


@pytest.fixture
def writes(monkeypatch) -> list[bytes]:  # noqa: ANN001
    """Every write to the relay from here on: smtplib's own send, counted."""
    seen: list[bytes] = []
    real_send = smtplib.SMTP.send

    def counting_send(self, data):  # noqa: ANN001, ANN202
        seen.append(data if isinstance(data, bytes) else data.encode())
        return real_send(self, data)

    monkeypatch.setattr(smtplib.SMTP, "send", counting_send)
    return seen


def _send_as_the_loop_does(outbox: Outbox, addresses) -> None:  # noqa: ANN001
    """Encode, read the replies to the last write, then write (tasks.delivery.send, without the database)."""
    for address in addresses:
        wire = outbox.encode(_message(address))
        outbox.collect()
        outbox.start(address, wire)


def _message(address: str):  # noqa: ANN202
    return render_message(
        template="newsletter", context={"title": "T", "body": "B"}, recipient=address, message_id=new_message_id()
    )


@pytest.mark.parametrize("stepped", [True, False], ids=["encoded-by-the-outbox", "started-only"])
def test_every_message_arrives_once_in_order_and_each_is_settled_before_the_next_starts(smtp, stepped) -> None:  # noqa: ANN001
    session = MailSession()
    settled: list[tuple[str, BaseException | None]] = []
    addresses = [f"r{i}@example.com" for i in range(30)]
    started_while_open: list[str] = []

    def settle(key: str, error: BaseException | None) -> None:
        settled.append((key, error))

    with Outbox(session, settle=settle) as outbox:
        for address in addresses:
            # as the send loop does: encode, read the replies to the last write, then write
            message = outbox.encode(_message(address)) if stepped else _message(address)
            outbox.collect()
            outbox.start(address, message)
            # the one just started is on the wire (or done) but not settled yet
            if settled and settled[-1][0] == address:
                started_while_open.append(address)
    session.close()

    assert settled == [(address, None) for address in addresses]
    assert started_while_open == []  # settled only when the next one starts, or at the end
    assert [r.rcpt_tos for r in smtp.received] == [[address] for address in addresses]


def test_a_message_is_held_after_its_commands_until_its_text_is_released_in_the_callers_thread(smtp) -> None:  # noqa: ANN001
    session = MailSession()
    settled: list[str] = []
    threads = threading.active_count()
    with Outbox(session, settle=lambda key, error: settled.append(key)) as outbox:
        outbox.start("a@example.com", _message("a@example.com"))
        # start() wrote MAIL FROM, RCPT TO and DATA and returned: the message itself is not out yet
        assert settled == [] and smtp.received == [] and outbox.holding is None
        outbox.collect()  # the replies to that group are read: the relay waits for the text
        assert outbox.holding == "a@example.com" and settled == [] and smtp.received == []
        outbox.release()  # the text goes out
        outbox.collect()  # the relay's verdict on it
        assert settled == ["a@example.com"] and outbox.holding is None
        assert threading.active_count() == threads  # no helper thread
    session.close()
    assert [r.rcpt_tos for r in smtp.received] == [["a@example.com"]]


def test_one_write_per_mail_the_held_text_goes_with_the_next_commands(smtp, writes) -> None:  # noqa: ANN001
    session = MailSession()
    addresses = [f"w{i}@example.com" for i in range(10)]
    with Outbox(session, settle=lambda key, error: None) as outbox:
        _send_as_the_loop_does(outbox, addresses)
        mail_writes = [w for w in writes if not w.upper().startswith((b"EHLO", b"HELO"))]
        assert len(mail_writes) == len(addresses)  # one per mail (the last text is still held)
        writes.clear()  # from here: the last text alone
    session.close()
    assert [r.rcpt_tos for r in smtp.received] == [[address] for address in addresses]
    assert len(writes) == 2 and writes[0].endswith(b"\r\n.\r\n")  # the last text, then QUIT
    assert writes[1].upper().startswith(b"QUIT")


def test_the_commands_and_the_previous_text_share_a_write(smtp, writes) -> None:  # noqa: ANN001
    session = MailSession()
    with Outbox(session, settle=lambda key, error: None) as outbox:
        outbox.start("a@example.com", _message("a@example.com"))
        outbox.collect()
        writes.clear()
        outbox.start("b@example.com", _message("b@example.com"))
        assert len(writes) == 1
        text_a, _, commands_b = writes[0].partition(b"\r\n.\r\n")
        assert b"a@example.com" in text_a and commands_b.startswith(b"MAIL FROM:")
        assert commands_b.endswith(b"DATA\r\n") and b"RCPT TO:<b@example.com>" in commands_b
    session.close()
    assert [r.rcpt_tos for r in smtp.received] == [["a@example.com"], ["b@example.com"]]


def test_a_dropped_message_never_reaches_the_relay_and_the_next_goes_on_a_new_connection(smtp) -> None:  # noqa: ANN001
    session = MailSession()
    results: dict[str, BaseException | None] = {}
    with Outbox(session, settle=results.__setitem__) as outbox:
        outbox.start("a@example.com", _message("a@example.com"))
        outbox.collect()
        assert outbox.holding == "a@example.com"
        outbox.drop(NotReleased("taken over"))
        assert isinstance(results["a@example.com"], NotReleased) and outbox.holding is None
        outbox.start("b@example.com", _message("b@example.com"))
    session.close()
    deadline = time.monotonic() + 5
    while len(smtp.received) < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [r.rcpt_tos for r in smtp.received] == [["b@example.com"]]  # the relay discarded a's half
    assert results["b@example.com"] is None


def test_a_refused_text_leaves_the_queued_commands_of_the_next_message_intact(smtp) -> None:  # noqa: ANN001
    smtp.handler.fail_for["bad@example.com"] = ["554 content rejected"]
    session = MailSession()
    results: dict[str, BaseException | None] = {}
    with Outbox(session, settle=results.__setitem__) as outbox:
        _send_as_the_loop_does(outbox, ("bad@example.com", "ok1@example.com", "ok2@example.com"))
    session.close()
    assert isinstance(results["bad@example.com"], smtplib.SMTPDataError)
    assert results["bad@example.com"].smtp_code == 554
    assert results["ok1@example.com"] is None and results["ok2@example.com"] is None
    assert [r.rcpt_tos for r in smtp.received] == [["ok1@example.com"], ["ok2@example.com"]]


def test_a_relay_without_pipelining_gets_each_message_sent_and_settled_by_start(settings) -> None:  # noqa: ANN001
    sink = SmtpSink(pipelining=False).start()
    try:
        settings.EMAIL_BACKEND = "tasks.relay.RelayBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
        session = MailSession()
        settled: list[str] = []
        with Outbox(session, settle=lambda key, error: settled.append(key)) as outbox:
            outbox.start("a@example.com", _message("a@example.com"))
            assert [r.rcpt_tos for r in sink.received] == [["a@example.com"]]  # smtplib's sendmail, whole
            assert settled == ["a@example.com"]
            outbox.start("b@example.com", _message("b@example.com"))
        session.close()
        assert settled == ["a@example.com", "b@example.com"]
    finally:
        sink.stop()


def test_a_failed_send_is_settled_with_its_error_and_the_connection_is_reopened(smtp) -> None:  # noqa: ANN001
    smtp.handler.fail_for["bad@example.com"] = ["451 try later"]
    smtp.handler.refuse["gone@example.com"] = "550 no such user"
    session = MailSession()
    results: dict[str, BaseException | None] = {}
    with Outbox(session, settle=results.__setitem__) as outbox:
        for address in ("bad@example.com", "gone@example.com", "ok@example.com"):
            outbox.start(address, _message(address))
    session.close()

    assert isinstance(results["bad@example.com"], smtplib.SMTPDataError)
    assert results["bad@example.com"].smtp_code == 451
    assert isinstance(results["gone@example.com"], smtplib.SMTPRecipientsRefused)
    assert results["ok@example.com"] is None
    assert [r.rcpt_tos for r in smtp.received] == [["ok@example.com"]]


def test_a_server_that_cannot_be_reached_fails_that_send(settings) -> None:  # noqa: ANN001

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    results: dict[str, BaseException | None] = {}
    with Outbox(MailSession(), settle=results.__setitem__) as outbox:
        outbox.start("a@example.com", _message("a@example.com"))
    assert isinstance(results["a@example.com"], OSError)


def test_other_backends_send_in_the_callers_thread_and_settle_at_once(settings) -> None:  # noqa: ANN001
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    session = MailSession()
    settled: list[str] = []
    with Outbox(session, settle=lambda key, error: settled.append(key)) as outbox:
        outbox.start("a@example.com", _message("a@example.com"))
        assert settled == ["a@example.com"]
    session.close()
    assert [m.to for m in mail.outbox] == [["a@example.com"]]


def test_an_error_in_the_caller_settles_the_message_and_writes_no_text_it_did_not_release(smtp) -> None:  # noqa: ANN001
    session = MailSession()
    settled: list[tuple[str, BaseException | None]] = []
    with pytest.raises(RuntimeError), Outbox(session, settle=lambda key, error: settled.append((key, error))) as outbox:
        outbox.start("a@example.com", _message("a@example.com"))
        raise RuntimeError("the caller broke off")
    session.close()
    assert [key for key, _ in settled] == ["a@example.com"]
    assert isinstance(settled[0][1], NotReleased)
    assert smtp.received == []


def test_with_overlap_off_smtp_sends_in_the_callers_thread(smtp, settings) -> None:  # noqa: ANN001
    settings.MAIL_SEND_OVERLAP = False
    session = MailSession()
    settled: list[str] = []
    with Outbox(session, settle=lambda key, error: settled.append(key)) as outbox:
        outbox.start("a@example.com", _message("a@example.com"))
        assert settled == ["a@example.com"]  # sent and settled before start() returned
    session.close()
    assert [r.rcpt_tos for r in smtp.received] == [["a@example.com"]]


@pytest.mark.parametrize(
    "address",
    [
        "alice@example.com",
        "A.B-c+tag@Sub.Example.ORG",
        "o'brien@example.com",
        "x@localhost",
        "김@example.com",
        "a@exämple.com",
        "Alice <alice@example.com>",
        '"quoted local"@example.com',
        "a..b@example.com",
        ".a@example.com",
        "a@b..c",
    ],
)
def test_the_address_fast_path_agrees_with_djangos_sanitize_address(address: str) -> None:
    from django.core.mail.message import sanitize_address

    from tasks.smtp import _sanitize

    try:
        expected: str | type[Exception] = sanitize_address(address, "utf-8")
    except ValueError:
        expected = ValueError
    try:
        got: str | type[Exception] = _sanitize(address, "utf-8")
    except ValueError:
        got = ValueError
    assert got == expected


def test_encode_sets_fresh_boundaries_and_keeps_djangos_message() -> None:
    from email import message_from_bytes

    from tasks.smtp import encode

    message = _message("a@example.com")
    first, second = message_from_bytes(encode(message)), message_from_bytes(encode(message))
    reference = message_from_bytes(message.message().as_bytes(linesep="\r\n"))
    assert first.get_boundary() != second.get_boundary()
    assert first.get_boundary().startswith("=_rm")
    for header in ("Subject", "From", "To", "Message-ID", "Content-Type"):
        assert first[header].split(";")[0] == reference[header].split(";")[0]
    assert [p.get_payload(decode=True) for p in first.walk() if not p.is_multipart()] == [
        p.get_payload(decode=True) for p in reference.walk() if not p.is_multipart()
    ]


def test_a_slow_answer_to_the_next_commands_lets_the_caller_record_the_verdict_before_waiting(smtp) -> None:  # noqa: ANN001
    """A worker killed while the relay dawdles over the next RCPT must not leave a settled outcome unrecorded."""
    smtp.handler.rcpt_delay_for["b@example.com"] = 0.5
    session = MailSession()
    settled: list[str] = []
    waits: list[list[str]] = []
    with Outbox(
        session, settle=lambda key, error: settled.append(key), on_wait=lambda: waits.append(list(settled))
    ) as outbox:
        _send_as_the_loop_does(outbox, ("a@example.com", "b@example.com", "c@example.com"))
    session.close()
    assert waits and waits[0] == ["a@example.com"]  # a's verdict was in, b's RCPT reply was not
    assert settled == ["a@example.com", "b@example.com", "c@example.com"]


def test_a_reply_that_comes_within_the_grace_is_read_without_recording_first() -> None:
    """Only a slow relay makes the loop record early: a reply a moment later, or one already in, is just read."""
    ours, relay = socket.socketpair()
    wire = smtplib.SMTP()
    wire.sock, wire.file = ours, ours.makefile("rb")
    try:
        assert _would_block(wire, 0.0)  # nothing sent yet
        timer = threading.Timer(0.05, relay.sendall, [b"250 2.1.0 Ok\r\n"])
        timer.start()
        assert not _would_block(wire, 10.0)  # comes within the grace: no wait to fill
        timer.join()
        assert wire.file.readline() == b"250 2.1.0 Ok\r\n"
        assert _would_block(wire, 0.01)  # the relay says nothing more within the grace
        relay.sendall(b"250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n")
        assert wire.file.readline() == b"250 2.1.5 Ok\r\n"
        assert not _would_block(wire, 0.0)  # the next reply is in the reader's buffer already
    finally:
        wire.file.close()
        ours.close()
        relay.close()


def test_a_connection_with_a_held_text_is_never_checked_with_noop(smtp, settings) -> None:  # noqa: ANN001
    """The relay is reading the held message's text: a NOOP then would be taken as text and never answered."""
    settings.EMAIL_NOOP_SECONDS, settings.EMAIL_TIMEOUT = 0, 3  # every idle moment counts as long
    session = MailSession()
    results: dict[str, BaseException | None] = {}
    with Outbox(session, settle=results.__setitem__) as outbox:
        _send_as_the_loop_does(outbox, ("a@example.com", "b@example.com", "c@example.com"))
    session.close()
    assert results == dict.fromkeys(("a@example.com", "b@example.com", "c@example.com"))
    assert [r.rcpt_tos for r in smtp.received] == [["a@example.com"], ["b@example.com"], ["c@example.com"]]
