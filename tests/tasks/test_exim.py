"""Through a real MTA: Debian's Exim 4 on loopback with STARTTLS (a certificate from a throw-away CA, passed
to reservemail as EMAIL_SSL_CAFILE) and AUTH PLAIN; real worker subprocesses send every template now and
reserved; the test reads the delivered Maildir files and Exim's main log.

Skipped, with the reason shown, where exim4 is not installed (.ci/run installs exim4-daemon-heavy as root).
"""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from tasks import services
from tasks.health import health_report
from tasks.mail import MailSpec
from tasks.models import Delivery, Task
from tests.harness import Exim, exim_available, exim_i18n, make_tls_files, stop_process, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(exim_available() is not None, reason=exim_available() or ""),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command makes the test CA"),
]
MONITOR = {"Authorization": "Bearer t-monitor"}  # /healthz gives its details to METRICS_TOKEN

SENDER = "reservemail <noreply@mail.reservemail.kr>"
KOREAN = {"name": "김민수", "title": "6월 소식", "body": "안녕하세요, 새 소식입니다.", "when": "6월 3일"}
ASCII = {"name": "Ann", "title": "June news", "body": "Hello readers", "when": "June 3"}
TEMPLATES = ("welcome", "reminder", "newsletter")


@pytest.fixture
def exim(tmp_path: Path):  # noqa: ANN201
    directory = tmp_path / "tls"
    directory.mkdir()
    relay = Exim(make_tls_files(directory)).start()  # its own directory: Exim wants every parent open to it
    yield relay
    relay.stop()
    shutil.rmtree(relay.root, ignore_errors=True)


def relay_env(exim: Exim, *, cafile: str) -> dict[str, str]:
    return {
        "EMAIL_PORT": str(exim.port),
        "EMAIL_USE_TLS": "1",
        "EMAIL_HOST_USER": exim.login,
        "EMAIL_HOST_PASSWORD": exim.password,
        "EMAIL_SSL_CAFILE": cafile,
        "DEFAULT_FROM_EMAIL": SENDER,
        "SITE_URL": "https://mail.reservemail.kr",
        "RECONCILE_INTERVAL": "1",
    }


def create(user, template: str, address: str, context: dict, *, due=None) -> Task:  # noqa: ANN001
    mail = MailSpec(template=template, recipients=(address,), context=context)
    if due is None:
        return services.enqueue_task(owner=user, mail=mail, description=template)
    return services.reserve_task(owner=user, scheduled_at=due, mail=mail, description=template)


def all_finished(tasks: list[Task]) -> bool:
    return Task.objects.filter(pk__in=[t.pk for t in tasks], status="finished").count() == len(tasks)


def message_ids(tasks: list[Task]) -> dict[str, Task]:
    by_task = {t.pk: t for t in tasks}
    return {mid: by_task[tid] for tid, mid in Delivery.objects.filter(task__in=tasks).values_list("task", "message_id")}


def text_of(message) -> str:  # noqa: ANN001
    return "".join(
        part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
        for part in message.walk()
        if part.get_content_maintype() == "text"
    )


def test_every_template_goes_through_exim_now_and_reserved_8bit_with_8bitmime_unsubscribe_only_on_bulk(
    transactional_db, user, worker_factory, exim, fast_lead
):
    idle = {"EMAIL_IDLE_SECONDS": "2", "WORKER_MAINTENANCE_INTERVAL": "1"}
    worker = worker_factory(extra_env=relay_env(exim, cafile=str(exim.tls.ca)) | idle)
    due = timezone.now() + timedelta(seconds=3)
    # ASCII first: Exim keeps a session's M8S at 8 once a message in it said BODY=8BITMIME.
    now_tasks = [create(user, t, f"{t}-now@example.com", ASCII) for t in TEMPLATES]
    reserved = [create(user, t, f"{t}-later@example.com", KOREAN, due=due) for t in TEMPLATES]
    tasks = now_tasks + reserved
    wait_until(lambda: all_finished(tasks), timeout=40, interval=0.2, what="every task to finish")
    for task in tasks:
        task.refresh_from_db()
        assert task.failed is False, task.log

    ids = message_ids(tasks)
    # Exim answers 250 once the message is in its spool; the Maildir delivery follows a moment later.
    delivered = wait_until(lambda: (found := exim.delivered()) and len(found) >= len(ids) and found, timeout=10)
    assert sorted(str(m["Message-ID"]) for m in delivered) == sorted(ids)  # each exactly once
    for message in delivered:
        task = ids[str(message["Message-ID"])]
        unsubscribe = message.get("List-Unsubscribe")
        if task.template == "newsletter":
            link = re.search(r"<(https://mail\.reservemail\.kr/u/[^>]+)>", str(unsubscribe))
            assert link, unsubscribe
            assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
            assert link.group(1) in text_of(message)
        else:
            assert unsubscribe is None and message.get("List-Unsubscribe-Post") is None
        korean = task in reserved
        assert ("김민수" in text_of(message) or "6월" in text_of(message)) is korean
        assert message.as_bytes().isascii() is not korean  # 8-bit parts arrive as sent, with BODY=8BITMIME

    log = exim.mainlog()
    received = [line for line in log.splitlines() if " <= " in line]
    assert len(received) == len(tasks)
    assert all("A=plain:mailer" in line and " X=TLS" in line for line in received)
    # Exim's L: the client pipelined MAIL FROM, RCPT TO and DATA (RFC 2920); "L-" or "L.-": offered, not used.
    # (A "." or "*" after it is about PIPE_CONNECT, which reservemail does not use.)
    assert all(re.search(r" L[.*]? ", line) for line in received), received
    # Exim's M8S: 8 = the client said BODY=8BITMIME, 0 = it said nothing (7-bit DATA).
    assert [re.search(r" M8S=(\d)", line).group(1) for line in received] == ["0"] * 3 + ["8"] * 3

    # Idle for EMAIL_IDLE_SECONDS, the running worker closes its session with QUIT (no server timeout).
    wait_until(lambda: "closed by QUIT" in exim.mainlog(), timeout=10, what="the idle session's QUIT")
    assert worker.poll() is None
    assert "SMTP command timeout" not in exim.mainlog()

    # One-click unsubscribe (RFC 8058) at the URL from a delivered header, as a mailbox provider
    # posts it (no session, no CSRF token): the next newsletter to that address is recorded
    # suppressed and never reaches Exim; transactional mail to it still does.
    newsletter = next(m for m in delivered if ids[str(m["Message-ID"])].template == "newsletter")
    url = re.search(r"<(https://[^>]+/u/[^>]+)>", str(newsletter["List-Unsubscribe"])).group(1)
    path = "/" + url.split("/", 3)[3]
    one_click = Client(enforce_csrf_checks=True).post(
        path, data="List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert one_click.status_code == 200
    address = str(newsletter["To"])
    again = [create(user, "newsletter", address, ASCII), create(user, "welcome", address, ASCII)]
    wait_until(lambda: all_finished(again), timeout=40, interval=0.2, what="the sends after unsubscribing")
    assert Delivery.objects.get(task=again[0]).status == "suppressed"
    assert Delivery.objects.get(task=again[1]).status == "sent"
    welcome_id = Delivery.objects.get(task=again[1]).message_id
    wait_until(lambda: len(exim.delivered()) >= len(ids) + 1, timeout=10, what="the welcome at Exim")
    later = [m for m in exim.delivered() if str(m["Message-ID"]) not in ids]
    assert [str(m["Message-ID"]) for m in later] == [welcome_id]


def test_without_the_ca_tasks_stay_pending_and_after_the_fix_a_restarted_worker_sends_each_once(
    transactional_db, user, worker_factory, exim, fast_lead, client
):
    first = worker_factory("w1", extra_env=relay_env(exim, cafile=""))  # only the system's CAs: not the relay's
    due = timezone.now() + timedelta(seconds=2)
    tasks = [create(user, "welcome", "a@example.com", ASCII), create(user, "newsletter", "b@example.com", ASCII)]
    tasks.append(create(user, "reminder", "c@example.com", ASCII, due=due))

    def refused() -> bool:
        logs = Task.objects.filter(pk__in=[t.pk for t in tasks]).values_list("log", flat=True)
        return all("certificate verify failed" in log for log in logs)

    wait_until(refused, timeout=40, interval=0.2, what="every task to meet the refusal")
    for task in tasks:
        task.refresh_from_db()
        assert task.status in ("queued", "running") and task.failed is False, task.log
        assert "relay refused: SSLCertVerificationError" in task.log
        assert "giving up" not in task.log
    assert Delivery.objects.filter(task__in=tasks, status="sent").count() == 0
    assert exim.delivered() == []
    report = health_report()
    assert report["relay"]["refused"] is True and "certificate verify failed" in report["relay"]["reason"]
    fast_lead.METRICS_TOKEN = "t-monitor"  # fast_lead is pytest-django's settings
    response = client.get("/healthz", headers=MONITOR)
    assert response.status_code == 503
    assert response.json()["relay"]["refused"] is True

    stop_process(first)
    before = len(exim.mainlog())
    # The setting fixed. A job the first worker had just popped when it was stopped is "queued" in
    # name only; the reconciler looks for it after HEARTBEAT_TIMEOUT (120 s by default), so 5 here.
    fixed = {**relay_env(exim, cafile=str(exim.tls.ca)), "HEARTBEAT_TIMEOUT": "5"}
    second = worker_factory("w2", extra_env=fixed)
    wait_until(lambda: all_finished(tasks), timeout=60, interval=0.2, what="every task to go out")
    for task in tasks:
        task.refresh_from_db()
        assert task.failed is False, task.log
    ids = message_ids(tasks)
    wait_until(lambda: len(exim.delivered()) >= len(ids), timeout=10, what="Exim to deliver to the Maildir")
    assert sorted(str(m["Message-ID"]) for m in exim.delivered()) == sorted(ids)  # each once
    assert health_report()["relay"] == {"ok": True, "refused": False}

    stop_process(second)  # a stopping worker says QUIT, so Exim logs a clean close
    wait_until(lambda: "closed by QUIT" in exim.mainlog()[before:], timeout=10, what="QUIT in Exim's log")
    after = exim.mainlog()[before:]
    assert "non-properly terminated" not in after
    assert not re.search(r"SMTP connection from \(.*\) lost", after), after


KIM = "김민수@example.com"


@pytest.mark.skipif(exim_i18n() is not None, reason=exim_i18n() or "")
@pytest.mark.parametrize("announced", [True, False], ids=["smtputf8", "no-smtputf8"])
def test_a_utf8_local_part_goes_through_exim_with_smtputf8_or_fails_alone_where_not_announced(
    transactional_db, user, worker_factory, tmp_path, fast_lead, settings, announced
):
    settings.EMAIL_SMTPUTF8 = True  # this process validates the send; the worker gets it from its environment
    directory = tmp_path / "tls"
    directory.mkdir()
    exim = Exim(make_tls_files(directory), smtputf8=announced).start()
    try:
        worker_factory(extra_env=relay_env(exim, cafile=str(exim.tls.ca)) | {"EMAIL_SMTPUTF8": "1"})
        # ASCII first: Exim keeps a session's protocol at utf8esmtp once a message in it said SMTPUTF8.
        recipients = ("ascii@example.com", {"address": KIM, "name": "김민수"})
        task = services.enqueue_task(
            owner=user, mail=MailSpec(template="welcome", recipients=recipients, context=KOREAN), description="utf8"
        )
        wait_until(lambda: all_finished([task]), timeout=40, interval=0.2, what="the task to finish")
        task.refresh_from_db()
        statuses = dict(Delivery.objects.filter(task=task).values_list("address", "status"))
        wanted = 1 + announced
        files = wait_until(lambda: (f := exim.delivered_bytes()) and len(f) >= wanted and f, timeout=10)
        assert len(files) == wanted
        log = exim.mainlog()
    finally:
        exim.stop()
        shutil.rmtree(exim.root, ignore_errors=True)
    ascii_file = next(f for f in files if b"Envelope-to: ascii@example.com" in f)
    assert ascii_file.split(b"\n\n", 1)[0].isascii()
    if announced:
        assert (task.failed, statuses) == (False, {KIM: "sent", "ascii@example.com": "sent"}), task.log
        (utf8_file,) = [f for f in files if f is not ascii_file]
        headers = utf8_file.split(b"\n\n", 1)[0].decode("utf-8")
        assert f"Envelope-to: {KIM}" in headers  # the RCPT Exim took, as UTF-8
        assert f"To: 김민수 <{KIM}>" in headers  # RFC 6532: UTF-8 in the header, not an encoded word
        assert "김민수" in utf8_file.split(b"\n\n", 1)[1].decode("utf-8")
        assert re.search(rf"=> \S+ <{KIM}> R=maildir", log), log
        ids = dict(Delivery.objects.filter(task=task).values_list("address", "message_id"))
        protocols = {a: re.search(rf"P=(\S+) .* id={ids[a].strip('<>')}", log).group(1) for a in ids}
        assert protocols == {"ascii@example.com": "esmtpsa", KIM: "utf8esmtpsa"}  # SMTPUTF8 only where needed
    else:
        assert task.failed is True
        assert statuses == {KIM: "failed", "ascii@example.com": "sent"}
        assert f"permanent failure {KIM}: relay does not support SMTPUTF8, which {KIM} needs" in task.log
        assert KIM not in log  # never offered to Exim
