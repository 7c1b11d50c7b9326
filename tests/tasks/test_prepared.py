"""Messages prepared while a job waits for its due time (tasks.delivery.prepared, tasks.smtp.encoding.restamp),
sent by real jobs to a real SMTP sink."""

import logging
import os
import re
import time
from datetime import UTC, timedelta
from email.utils import parsedate_to_datetime

import pytest
from django.utils import timezone

from tasks import scheduler
from tasks.delivery import prepared
from tasks.delivery import send as send_module
from tasks.delivery.policy import prepare_wanted
from tasks.jobs import send_task
from tasks.mail import new_message_id, render_message
from tasks.models import Delivery, Task
from tasks.services.edit import ReservationChanges, edit_reservation
from tasks.smtp import encode
from tasks.smtp.connection import session
from tasks.smtp.encoding import restamp

pytestmark = pytest.mark.django_db

BOUNDARY = re.compile(rb"=_rm[0-9a-f]{32}")
DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")


def _date(value: str):
    parsed = parsedate_to_datetime(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # "-0000": UTC, zone not told (RFC 5322)


def _normal(data: bytes) -> bytes:
    return DATE.sub(b"\r\nDate: -\r\n", BOUNDARY.sub(b"=_rm-", data))


@pytest.fixture(autouse=True)
def no_entries(settings):
    settings.DELIVERY_PREPARE = "on"  # the tests below that need "auto" say so
    prepared.clear()
    yield
    prepared.clear()


CASES = [  # plain text and HTML, a quoted display name, an 8-bit body (Korean), a bulk list's headers
    ("welcome", {"name": "Ann"}, None),
    ("newsletter", {"title": "뉴스", "body": "안녕하세요 " * 40}, '"Kim, Ann" <ann@example.com>'),
    ("reminder", {}, None),
]


def test_restamp_writes_what_encoding_the_message_now_writes(smtp):
    placeholder = "<0011@prepared.invalid>"

    def envelope(template, context, to, message_id):
        message = render_message(
            template=template, context=context, recipient="ann@example.com", message_id=message_id, to=to
        )
        return session.encode(message)

    early = [envelope(*case, placeholder) for case in CASES]
    time.sleep(2.1)  # the Date is the send's, not the preparing's
    for case, ready in zip(CASES, early, strict=True):
        real = new_message_id()
        stamped = restamp(ready, old_id=placeholder, message_id=real)
        fresh = envelope(*case, real)
        assert stamped is not None
        assert _normal(stamped.data) == _normal(fresh.data)
        assert (stamped.sender, stamped.recipients, stamped.utf8) == (fresh.sender, fresh.recipients, fresh.utf8)
        date = _date(DATE.search(stamped.data).group(0)[8:-2].decode())
        assert abs((date - timezone.now()).total_seconds()) < 1.5
        assert stamped.message.extra_headers["Message-ID"] == real  # a re-encode for the relay (7-bit) carries it
        assert f"\r\nMessage-ID: {real}\r\n".encode() in encode(stamped.message, seven_bit=True)


def test_restamp_refuses_a_message_id_the_encoder_would_fold(smtp):
    placeholder = "<0011@prepared.invalid>"
    message = render_message(template="welcome", context={}, recipient="ann@example.com", message_id=placeholder)
    envelope = session.encode(message)
    long_id = f"<{'9' * 70}@example.com>"
    assert restamp(envelope, old_id=placeholder, message_id=long_id) is None
    assert restamp(envelope, old_id="<other@prepared.invalid>", message_id=new_message_id()) is None


def _reserved(user, *, seconds, recipients, context=None, status="reserved"):
    return Task.objects.create(
        owner=user,
        status=status,
        reserved_at=timezone.now() + timedelta(seconds=seconds) if status == "reserved" else None,
        queue="high",
        description="prepared",
        template="welcome",
        context=context or {"message": "first text"},
        recipients=recipients,
    )


def test_fill_prepares_the_recipients_of_reservations_due_by_then_only(user, smtp):
    soon = _reserved(user, seconds=2, recipients=["a@example.com", {"address": "b@example.com", "name": "Bea"}])
    _reserved(user, seconds=60, recipients=["later@example.com"])
    _reserved(user, seconds=-1, recipients=["overdue@example.com"])  # due already: the claim takes it now
    _reserved(user, seconds=0, recipients=["queued@example.com"], status="queued")
    added = prepared.fill(until=soon.reserved_at, deadline=time.monotonic() + 10)
    assert added == 2 and prepared.size() == 2


def test_fill_stops_at_its_deadline_and_at_its_cap(user, smtp, settings):
    task = _reserved(user, seconds=2, recipients=[f"r{i}@example.com" for i in range(50)])
    assert prepared.fill(until=task.reserved_at, deadline=time.monotonic() - 1) == 0
    settings.DELIVERY_PREPARE_MAX = 7
    assert prepared.fill(until=task.reserved_at, deadline=time.monotonic() + 10) == 7
    assert prepared.fill(until=task.reserved_at, deadline=time.monotonic() + 10) == 0  # full


def test_fill_prepares_at_most_one_slice_of_a_task(user, smtp, settings):
    settings.DELIVERY_SLICE_MAX = 5
    big = _reserved(user, seconds=2, recipients=[f"b{i}@example.com" for i in range(12)])
    small = _reserved(user, seconds=2, recipients=["s0@example.com", "s1@example.com"])
    assert prepared.fill(until=max(big.reserved_at, small.reserved_at), deadline=time.monotonic() + 10) == 7


@pytest.fixture
def renders(monkeypatch):
    """Counts the messages the send loop renders itself (the real render_for, observed)."""
    calls = []
    real = send_module.render_for

    def counted(recipient, **kwargs):
        calls.append(recipient.address)
        return real(recipient, **kwargs)

    monkeypatch.setattr(send_module, "render_for", counted)
    return calls


def test_a_job_waiting_for_its_time_prepares_and_sends_each_with_its_own_message_id(user, smtp, renders, caplog):
    recipients = ["a@example.com", {"address": "b@example.com", "name": "Bea", "context": {"message": "own text"}}]
    task = _reserved(user, seconds=1.5, recipients=recipients)
    with caplog.at_level(logging.INFO, logger="tasks.delivery.prepared"):
        send_task(task.pk)
    assert any("prepared 2 messages" in r.getMessage() for r in caplog.records)
    assert renders == []  # both went out as prepared
    assert prepared.size() == 0  # entries live for one job
    task.refresh_from_db()
    assert (task.status, task.failed) == ("finished", False)
    ids = dict(Delivery.objects.filter(task=task).values_list("address", "message_id"))
    got = {r.rcpt_tos[0]: r for r in smtp.received}
    assert set(got) == {"a@example.com", "b@example.com"}
    for address, mail in got.items():
        assert mail.message_id == ids[address]
        assert mail.at >= task.reserved_at.timestamp()
        sent = _date(mail.message["Date"])
        assert sent >= task.reserved_at.replace(microsecond=0) - timedelta(seconds=1)  # the send's time, in seconds
    assert "first text" in got["a@example.com"].message.get_payload(0).get_payload(decode=True).decode()
    assert "own text" in got["b@example.com"].message.get_payload(0).get_payload(decode=True).decode()
    assert "Bea" in got["b@example.com"].message["To"]


def test_an_edit_after_the_preparing_is_what_goes_out(user, smtp, renders, fast_lead):
    task = _reserved(user, seconds=3, recipients=["a@example.com", "b@example.com"])
    assert prepared.fill(until=task.reserved_at, deadline=time.monotonic() + 10) == 2
    edit_reservation(owner=user, task_id=task.pk, changes=ReservationChanges(context={"message": "edited text"}))
    Task.objects.filter(pk=task.pk).update(reserved_at=timezone.now() - timedelta(seconds=1))
    send_task(task.pk)
    assert sorted(renders) == ["a@example.com", "b@example.com"]  # the prepared ones did not match the edit
    bodies = [r.message.get_payload(0).get_payload(decode=True).decode() for r in smtp.received]
    assert len(bodies) == 2 and all("edited text" in b and "first text" not in b for b in bodies)


CORES = os.cpu_count() or 1


@pytest.mark.parametrize(
    ("mode", "cap", "here", "wanted"),
    [
        ("auto", 2000, CORES, True),  # the workers share the cores: rendering ahead frees one for the others
        ("auto", 2000, CORES - 1, False),  # each has a core: it renders while the relay answers, at no cost
        ("on", 2000, 0, True),
        ("off", 2000, CORES + 5, False),
        ("on", 0, CORES, False),  # no room
    ],
)
def test_prepare_wanted(settings, mode, cap, here, wanted):
    settings.DELIVERY_PREPARE, settings.DELIVERY_PREPARE_MAX = mode, cap
    assert prepare_wanted(workers_here=here) is wanted


def test_this_hosts_workers_are_counted_from_rqs_registry(worker_factory):
    assert scheduler.workers_on_this_host() == 0
    worker_factory("w1")
    worker_factory("w2")
    assert scheduler.workers_on_this_host() == 2


def test_auto_with_a_core_per_worker_renders_each_message_when_it_is_sent(user, smtp, renders, caplog, settings):
    settings.DELIVERY_PREPARE = "auto"  # no worker registered on this host: fewer workers than cores
    task = _reserved(user, seconds=1.2, recipients=["a@example.com", "b@example.com"])
    with caplog.at_level(logging.INFO, logger="tasks.delivery.prepared"):
        send_task(task.pk)
    assert not [r for r in caplog.records if "prepared" in r.getMessage()]
    assert sorted(renders) == ["a@example.com", "b@example.com"]
    assert len(smtp.received) == 2
