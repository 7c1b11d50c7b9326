"""The Outbox: the next message is prepared while the current one is on the wire, never two at once."""

from __future__ import annotations

import smtplib
import threading

import pytest
from django.core import mail
from rq.worker import Worker

from tasks.mail import new_message_id, render_message
from tasks.smtp import MailSession, Outbox
from tasks.smtp import connection as smtp_connection
from tasks.smtp.cores import usable_cores
from tests.harness import free_port


@pytest.fixture(autouse=True)
def _overlap_on(settings) -> None:  # noqa: ANN001
    """These tests are about the overlap itself; "auto" would decide it by this machine's cores."""
    settings.MAIL_SEND_OVERLAP = True


def _message(address: str):  # noqa: ANN202
    return render_message(
        template="newsletter", context={"title": "T", "body": "B"}, recipient=address, message_id=new_message_id()
    )


def test_every_message_arrives_once_in_order_and_each_is_settled_before_the_next_starts(smtp) -> None:  # noqa: ANN001
    session = MailSession()
    settled: list[tuple[str, BaseException | None]] = []
    addresses = [f"r{i}@example.com" for i in range(30)]
    started_while_open: list[str] = []

    def settle(key: str, error: BaseException | None) -> None:
        settled.append((key, error))

    with Outbox(session, settle=settle) as outbox:
        for address in addresses:
            outbox.start(address, _message(address))
            # the one just started is on the wire (or done) but not settled yet
            if settled and settled[-1][0] == address:
                started_while_open.append(address)
    session.close()

    assert settled == [(address, None) for address in addresses]
    assert started_while_open == []  # settled only when the next one starts, or at the end
    assert [r.rcpt_tos for r in smtp.received] == [[address] for address in addresses]


def test_the_wire_work_runs_in_the_helper_thread_and_overlaps_the_callers_work(smtp) -> None:  # noqa: ANN001
    smtp.handler.reply_delay_for["slow@example.com"] = 0.5
    session = MailSession()
    settled: list[str] = []
    with Outbox(session, settle=lambda key, error: settled.append(key)) as outbox:
        outbox.start("slow@example.com", _message("slow@example.com"))
        # start() returned while the server still holds its reply: the caller is free meanwhile
        assert settled == []
        assert any(t.name.startswith("mail-send") for t in threading.enumerate())
        outbox.flush()
        assert settled == ["slow@example.com"]
    session.close()


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
    from tests.harness import free_port

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


def test_an_error_while_sending_still_settles_the_message_on_the_wire(smtp) -> None:  # noqa: ANN001
    session = MailSession()
    settled: list[str] = []
    with pytest.raises(RuntimeError), Outbox(session, settle=lambda key, error: settled.append(key)) as outbox:
        outbox.start("a@example.com", _message("a@example.com"))
        raise RuntimeError("the caller broke off")
    session.close()
    assert settled == ["a@example.com"]


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


def test_auto_overlap_holds_while_the_host_has_two_cores_per_registered_worker(
    settings, redis_conn, monkeypatch
) -> None:  # noqa: ANN001
    settings.MAIL_SEND_OVERLAP = "auto"
    fits = max(1, usable_cores() // 2)  # workers that leave two cores each (one on a 1-core host, which never fits)
    workers = [Worker(["default"], connection=redis_conn, name=f"overlap-{i}") for i in range(fits + 1)]
    for worker in workers[:fits]:
        worker.register_birth()
    session = MailSession()
    assert session.overlap() is (usable_cores() >= 2)
    workers[fits].register_birth()  # one worker more than the cores carry
    assert session.overlap() is (usable_cores() >= 2)  # decided a moment ago: stands for OVERLAP_RECHECK
    monkeypatch.setattr(smtp_connection, "OVERLAP_RECHECK", 0.0)
    assert session.overlap() is False
    workers[fits].register_death()
    assert session.overlap() is (usable_cores() >= 2)


def test_auto_overlap_keeps_its_last_decision_while_redis_cannot_be_reached(
    settings, redis_conn, monkeypatch, caplog
) -> None:  # noqa: ANN001
    settings.MAIL_SEND_OVERLAP = "auto"
    monkeypatch.setattr(smtp_connection, "OVERLAP_RECHECK", 0.0)
    session = MailSession()
    decided = session.overlap()
    for config in settings.RQ_QUEUES.values():  # nothing listens there: every Redis call fails at once
        monkeypatch.setitem(config, "URL", f"redis://127.0.0.1:{free_port()}/0")
    with caplog.at_level("WARNING", logger="tasks.smtp"):
        assert session.overlap() is decided
        assert session.overlap() is decided
    warnings = [r.message for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # once per outage, not once per recheck
    assert "could not count the workers" in warnings[0]
    assert MailSession().overlap() is False  # nothing decided yet: no overlap


@pytest.mark.parametrize("mode", [True, False])
def test_an_explicit_overlap_setting_is_not_asked_of_redis(settings, monkeypatch, mode) -> None:  # noqa: ANN001
    settings.MAIL_SEND_OVERLAP = mode
    for config in settings.RQ_QUEUES.values():
        monkeypatch.setitem(config, "URL", f"redis://127.0.0.1:{free_port()}/0")
    assert MailSession().overlap() is mode
