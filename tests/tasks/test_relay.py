"""The relay over real TLS: a private CA (EMAIL_SSL_CAFILE), a client certificate, AUTH, refusals kept
pending and shown in health, BODY=8BITMIME or 7-bit bodies, idle close with QUIT and NOOP before reuse.

The relay is aiosmtpd on loopback with certificates from a throw-away CA (tests.harness.make_tls_files).
"""

from __future__ import annotations

import shutil
import smtplib
import ssl
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import django_rq
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from django.core import mail as django_mail
from django.utils import timezone

from tasks import services
from tasks.health import health_report
from tasks.mail import MailSpec, new_message_id, render_message
from tasks.models import Delivery, Task
from tasks.smtp import MailSession, Outbox, session
from tests.harness import TlsFiles, free_port, make_tls_files, wait_until

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command makes the test CA"),
]
MONITOR = {"Authorization": "Bearer t-monitor"}  # /healthz gives its details to METRICS_TOKEN

KOREAN = "안녕하세요, 예약 메일입니다."


class RelayHandler:
    """Records messages (with their MAIL FROM options and raw DATA) and the commands QUIT and NOOP."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[list[str], list[str], bytes]] = []  # (mail options, rcpt tos, DATA)
        self.commands: list[str] = []
        self.announce_8bitmime = True

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: ANN001, ANN201
        session.host_name = hostname
        if not self.announce_8bitmime:
            responses = [line for line in responses if "8BITMIME" not in line]
        return responses

    async def handle_NOOP(self, server, session, envelope, arg):  # noqa: ANN001, ANN201
        with self.lock:
            self.commands.append("NOOP")
        return "250 OK"

    async def handle_QUIT(self, server, session, envelope):  # noqa: ANN001, ANN201
        with self.lock:
            self.commands.append("QUIT")
        return "221 Bye"

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201
        with self.lock:
            self.messages.append((list(envelope.mail_options), list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Message accepted"


def _authenticate(server, session, envelope, mechanism, auth_data):  # noqa: ANN001, ANN202
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mailer", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


class TlsRelay:
    """aiosmtpd with STARTTLS (or implicit TLS) and required AUTH; optionally a client certificate too."""

    def __init__(self, files: TlsFiles, *, implicit: bool = False, client_cert: bool = False) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(files.server_cert, files.server_key)
        if client_cert:
            context.load_verify_locations(cafile=files.ca)
            context.verify_mode = ssl.CERT_REQUIRED
        self.handler = RelayHandler()
        self.port = free_port()
        tls = {"ssl_context": context} if implicit else {"tls_context": context, "require_starttls": True}
        self.controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=_authenticate,
            auth_exclude_mechanism=["LOGIN"],  # AUTH PLAIN, as the relays we meet (smtplib's LOGIN hangs on aiosmtpd's)
            # aiosmtpd counts only STARTTLS as TLS: with implicit TLS, AUTH is offered (and used) but not required
            auth_required=not implicit,
            auth_require_tls=not implicit,
            **tls,
        )

    def __enter__(self) -> TlsRelay:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def fresh_session() -> Iterator[None]:
    """The worker's session starts and ends as in a new process (no connection, no refusal)."""
    session.shutdown()
    yield
    session.shutdown()


def use_relay(settings, relay: TlsRelay, *, cafile: Path | None, implicit: bool = False) -> None:  # noqa: ANN001
    settings.EMAIL_BACKEND = "tasks.relay.RelayBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", relay.port, 5
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "mailer", "s3cret"
    settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL = not implicit, implicit
    settings.EMAIL_SSL_CAFILE = str(cafile) if cafile else ""


@pytest.fixture
def send_now(user, django_capture_on_commit_callbacks):  # noqa: ANN001, ANN201
    """Create a task sent now (its job queued on commit), as the mail form does."""

    def create(address: str = "a@example.com") -> Task:
        spec = MailSpec(template="welcome", recipients=(address,), context={"name": "Ann"})
        with django_capture_on_commit_callbacks(execute=True):
            return services.enqueue_task(owner=user, mail=spec, description="relay test")

    return create


def run_worker() -> None:
    """An in-process burst worker (MailWorker: its teardown closes the relay session, as a stopping worker)."""
    django_rq.get_worker("high", "default", "low").work(burst=True)


def test_starttls_with_the_private_ca_and_auth_delivers(send_now, settings, tls_files, fresh_session):
    with TlsRelay(tls_files) as relay:
        use_relay(settings, relay, cafile=tls_files.ca)
        task = send_now()
        run_worker()
        task.refresh_from_db()
        assert (task.status, task.failed) == ("finished", False), task.log
        assert [rcpt for _opts, rcpt, _data in relay.handler.messages] == [["a@example.com"]]
        assert relay.handler.commands[-1:] == ["QUIT"]  # the stopping worker said goodbye


def test_implicit_tls_with_the_private_ca_delivers(send_now, settings, tls_files, fresh_session):
    with TlsRelay(tls_files, implicit=True) as relay:
        use_relay(settings, relay, cafile=tls_files.ca, implicit=True)
        task = send_now()
        run_worker()
        task.refresh_from_db()
        assert (task.status, task.failed) == ("finished", False), task.log
        assert len(relay.handler.messages) == 1


def test_a_client_certificate_is_presented_with_the_private_ca_still_trusted(
    send_now, settings, tls_files, fresh_session
):
    with TlsRelay(tls_files, client_cert=True) as relay:
        use_relay(settings, relay, cafile=tls_files.ca)
        settings.EMAIL_SSL_CERTFILE, settings.EMAIL_SSL_KEYFILE = str(tls_files.client_cert), str(tls_files.client_key)
        task = send_now()
        run_worker()
        task.refresh_from_db()
        assert (task.status, task.failed) == ("finished", False), task.log
        assert len(relay.handler.messages) == 1


def test_without_the_ca_tasks_stay_pending_health_says_refused_and_after_the_fix_each_goes_once(
    send_now, settings, tls_files, fresh_session, client
):
    with TlsRelay(tls_files) as relay:
        use_relay(settings, relay, cafile=tls_files.other_ca)  # the relay's CA is not among the trusted
        tasks = [send_now(f"r{i}@example.com") for i in range(3)]
        run_worker()
        for task in tasks:
            task.refresh_from_db()
            assert (task.status, task.failed) == ("queued", False), task.log
            assert "relay refused: SSLCertVerificationError" in task.log
            assert "certificate verify failed" in task.log
            assert "kept pending until the relay accepts" in task.log
            assert "giving up" not in task.log
        assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
        assert relay.handler.messages == []

        report = health_report()
        assert report["ok"] is False
        assert report["relay"]["refused"] is True
        assert "certificate verify failed" in report["relay"]["reason"]
        assert any(p.startswith("relay refused: SSLCertVerificationError") for p in report["problems"])
        settings.METRICS_TOKEN = "t-monitor"
        response = client.get("/healthz", headers=MONITOR)
        assert response.status_code == 503
        assert response.json()["relay"]["refused"] is True

        settings.EMAIL_SSL_CAFILE = str(tls_files.ca)  # fixed; the worker restarts (run_worker: a new one)
        wait_until(lambda: _all_due(tasks), timeout=10, what="the retries to fall due")
        run_worker()
        _run_until_sent(tasks)
        assert sorted(rcpt[0] for _o, rcpt, _d in relay.handler.messages) == [f"r{i}@example.com" for i in range(3)]
        assert health_report()["relay"] == {"ok": True, "refused": False}


def _all_due(tasks: list[Task]) -> bool:
    from tasks import scheduler

    now = timezone.now()
    return all((scheduler.due_time(task_id=t.pk) or now) <= now for t in tasks)


def _run_until_sent(tasks: list[Task]) -> None:
    from tasks.services.reconcile import reconcile_tasks

    def sent() -> bool:
        reconcile_tasks()  # jobs the retries left behind are queued again
        run_worker()
        return all(Task.objects.get(pk=t.pk).status == "finished" for t in tasks)

    wait_until(sent, timeout=20, interval=0.5, what="the tasks to go out")
    for task in tasks:
        task.refresh_from_db()
        assert task.failed is False, task.log


def test_a_refused_login_keeps_the_task_pending_with_the_535_in_its_log(send_now, settings, tls_files, fresh_session):
    with TlsRelay(tls_files) as relay:
        use_relay(settings, relay, cafile=tls_files.ca)
        settings.EMAIL_HOST_PASSWORD = "wrong"
        task = send_now()
        run_worker()
        task.refresh_from_db()
        assert (task.status, task.failed) == ("queued", False), task.log
        assert "relay refused: 535" in task.log
        assert health_report()["relay"]["reason"].startswith("relay refused: 535")


def _send(session_: MailSession, address: str, body: str) -> dict[str, BaseException | None]:
    results: dict[str, BaseException | None] = {}
    message = render_message(
        template="newsletter",
        context={"title": "T", "body": body},
        recipient=address,
        message_id=new_message_id(),
    )
    with Outbox(session_, settle=results.__setitem__) as outbox:
        outbox.start(address, outbox.encode(message))
    return results


@pytest.mark.parametrize("announced", [True, False])
def test_an_8bit_body_goes_with_body_8bitmime_when_announced_else_7bit_safe(settings, tls_files, announced):
    with TlsRelay(tls_files) as relay:
        relay.handler.announce_8bitmime = announced
        use_relay(settings, relay, cafile=tls_files.ca)
        mine = MailSession()
        assert _send(mine, "k@example.com", KOREAN) == {"k@example.com": None}
        assert _send(mine, "a@example.com", "plain ascii") == {"a@example.com": None}
        mine.shutdown()
    (options_8bit, _r, data_8bit), (options_ascii, _r2, data_ascii) = [
        ([o for o in options if not o.startswith("SIZE=")], rcpt, data)
        for options, rcpt, data in relay.handler.messages
    ]
    assert options_ascii == [] and data_ascii.isascii()
    if announced:
        assert options_8bit == ["BODY=8BITMIME"]
        assert not data_8bit.isascii()
    else:
        assert options_8bit == []
        assert data_8bit.isascii()
        assert b"Content-Transfer-Encoding: quoted-printable" in data_8bit
    parts = [p for p in message_from_bytes(data_8bit).walk() if not p.is_multipart()]
    assert parts and all(KOREAN in p.get_payload(decode=True).decode("utf-8") for p in parts)


def test_an_idle_connection_is_closed_with_quit_and_a_kept_one_is_checked_with_noop(settings, tls_files):
    with TlsRelay(tls_files) as relay:
        use_relay(settings, relay, cafile=tls_files.ca)
        settings.EMAIL_NOOP_SECONDS, settings.EMAIL_IDLE_SECONDS = 0.2, 1.0
        mine = MailSession()
        assert _send(mine, "a@example.com", "one") == {"a@example.com": None}
        assert mine.close_if_idle() is False  # just used
        time.sleep(0.3)
        assert _send(mine, "b@example.com", "two") == {"b@example.com": None}  # NOOP first, same connection
        assert relay.handler.commands == ["NOOP"]
        time.sleep(1.1)
        assert mine.close_if_idle() is True
        wait_until(lambda: relay.handler.commands == ["NOOP", "QUIT"], timeout=5, what="QUIT")
        mine.shutdown()
    assert len(relay.handler.messages) == 2


def test_the_sender_check_refuses_localhost_and_reserved_domains_and_passes_a_real_one(settings):
    from tasks.checks import check_sender, check_sender_for_deploy

    settings.DEBUG = True
    for sender in ("noreply@localhost", "reservemail <noreply@localhost>", "a@example.com", "a@x.example.net",
                   "a@host.test", "a@mail.invalid", "a@app.localhost", "a@mail.example"):  # fmt: skip
        settings.DEFAULT_FROM_EMAIL = sender
        assert [e.id for e in check_sender_for_deploy(None)] == ["tasks.E001"], sender
        assert check_sender(None) == [], sender  # development: only --deploy asks
    settings.DEFAULT_FROM_EMAIL = "reservemail <noreply@mail.reservemail.kr>"
    assert check_sender_for_deploy(None) == [] and check_sender(None) == []
    settings.DEBUG = False
    assert check_sender(None) == []
    settings.DEFAULT_FROM_EMAIL = "noreply@localhost"
    assert [e.id for e in check_sender(None)] == ["tasks.E001"]
    assert check_sender_for_deploy(None) == []  # the plain check above reports it already


def test_locmem_mail_does_not_touch_the_relay_state(send_now, fresh_session):
    task = send_now()
    run_worker()
    assert Task.objects.get(pk=task.pk).status == "finished"
    assert len(django_mail.outbox) == 1
    assert health_report()["relay"] == {"ok": True, "refused": False}


def test_the_workers_maintenance_step_closes_the_idle_relay_connection_with_quit(settings, tls_files, fresh_session):
    with TlsRelay(tls_files) as relay:
        use_relay(settings, relay, cafile=tls_files.ca)
        settings.EMAIL_IDLE_SECONDS = 0.2
        assert _send(session, "a@example.com", "one") == {"a@example.com": None}
        worker = django_rq.get_worker("high", "default", "low")
        worker.register_birth()  # maintenance re-registers a worker Redis forgot: it needs its birth
        worker.run_maintenance_tasks()
        assert relay.handler.commands == []  # used just now: kept
        time.sleep(0.3)
        worker.run_maintenance_tasks()
        wait_until(lambda: relay.handler.commands == ["QUIT"], timeout=5, what="QUIT")
        assert session.close_if_idle() is False  # nothing left to close
        worker.register_death()


def test_a_plain_relay_without_tls_or_login_also_gets_body_8bitmime(smtp):
    """Django's backend says EHLO only for STARTTLS or a login; the 8-bit decision must not depend on it."""
    mine = MailSession()
    assert _send(mine, "k@example.com", KOREAN) == {"k@example.com": None}
    mine.shutdown()
    (received,) = smtp.received
    assert KOREAN in received.message.get_payload(0).get_payload(decode=True).decode("utf-8")
    assert "8bit" in str(received.message.get_payload(0)["Content-Transfer-Encoding"])


@pytest.mark.parametrize(
    ("error", "refused", "permanent"),
    [
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), True, False),
        (ssl.SSLError(1, "sslv3 alert handshake failure"), True, False),
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid"), True, False),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), False, False),
        (smtplib.SMTPServerDisconnected("Connection unexpectedly closed"), False, False),
        (smtplib.SMTPDataError(451, b"try later"), False, False),
        (smtplib.SMTPDataError(554, b"rejected"), False, True),
    ],
)
def test_relay_refusals_are_neither_permanent_nor_plain_transient(error, refused, permanent):
    from tasks.mail import describe, is_permanent
    from tasks.relay import is_relay_refused

    assert is_relay_refused(error) is refused
    assert is_permanent(error) is permanent
    assert describe(error).startswith("relay refused: ") is refused


def _attempt_when_due(task: Task) -> None:
    """Release the task's job once due (what the RQ scheduler does) and run it; bounded by the wait."""
    from tasks import scheduler

    wait_until(lambda: (scheduler.due_time(task_id=task.pk) or timezone.now()) <= timezone.now(), timeout=10)
    scheduler.release_overdue(older_than=0)
    run_worker()


def test_a_refused_task_whose_job_retries_are_spent_backs_off_instead_of_at_each_reconcile(
    send_now, settings, tls_files, fresh_session
):
    from tasks import scheduler
    from tasks.services.reconcile import reconcile_tasks

    settings.TASK_RETRY_INTERVALS = [1, 4]
    with TlsRelay(tls_files) as relay:
        use_relay(settings, relay, cafile=tls_files.other_ca)  # refused: certificate verify failed
        task = send_now()
        run_worker()  # attempt 1, then RQ's retries: attempts 2 and 3
        for _ in range(2):
            _attempt_when_due(task)
        task.refresh_from_db()
        assert (task.status, task.attempts, task.failed) == ("queued", 3, False), task.log
        assert scheduler.job_state(task_id=task.pk) == "failed"  # RQ's retries are spent

        report = reconcile_tasks()  # was: queued again at once, with RQ's retries afresh, every pass
        assert report.enqueued == [task.pk]
        assert scheduler.job_state(task_id=task.pk) == "scheduled"
        wait = (scheduler.due_time(task_id=task.pk) - timezone.now()).total_seconds()
        assert 2 <= wait <= 5.5  # relay_retry_delay(3): the last interval (released a little early)
        assert reconcile_tasks().enqueued == []  # a scheduled job is left alone
        run_worker()
        assert Task.objects.get(pk=task.pk).attempts == 3  # nothing before its time

        _attempt_when_due(task)  # attempt 4: refused again, and no RQ retry left for it
        assert Task.objects.get(pk=task.pk).attempts == 4
        assert scheduler.job_state(task_id=task.pk) == "failed"
        reconcile_tasks()
        wait = (scheduler.due_time(task_id=task.pk) - timezone.now()).total_seconds()
        assert 2 <= wait <= 5.5
        assert relay.handler.messages == []
    task.refresh_from_db()
    assert (task.status, task.failed) == ("queued", False)
    assert "giving up" not in task.log
