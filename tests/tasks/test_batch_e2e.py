"""Bursts of reservations end to end: a real worker (with RQ's scheduler), Redis and SMTP sink."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tasks import services
from tasks.mail import MailSpec
from tasks.models import Delivery, Task
from tests.harness import wait_until

pytestmark = [pytest.mark.e2e]


def reserve(owner, address, due):
    spec = MailSpec(template="welcome", recipients=(address,), context={"name": "Burst"})
    return services.reserve_task(owner=owner, scheduled_at=due, mail=spec, description="burst")


def test_burst_due_at_one_instant_arrives_once_each_never_early(transactional_db, fast_lead, worker, smtp):
    users = [get_user_model().objects.create_user(username=f"u{i}", password="pw-123456") for i in range(3)]
    due = timezone.now() + timedelta(seconds=3.3)
    tasks = [reserve(users[i % 3], f"b{i}@example.com", due) for i in range(30)]
    canceled = reserve(users[0], "canceled@example.com", due)
    services.cancel_reserve(owner=users[0], task_id=canceled.pk)
    wait_until(lambda: len(smtp.received) >= 30, timeout=30, what="30 mails")
    wait_until(
        lambda: Task.objects.filter(pk__in=[t.pk for t in tasks], status="finished").count() == 30,
        timeout=10,
        what="all finished",
    )
    received = smtp.received
    assert sorted(r.rcpt_tos[0] for r in received) == sorted(f"b{i}@example.com" for i in range(30))
    assert min(r.at for r in received) >= due.timestamp(), "a mail arrived before its reservation time"
    assert max(r.at for r in received) <= due.timestamp() + 5.0
    sent = set(Delivery.objects.filter(status="sent").values_list("message_id", flat=True))
    assert {r.message_id for r in received} == sent and len(sent) == 30
    assert Task.objects.get(pk=canceled.pk).status == "canceled"
    assert worker.log_path.read_text().count("task running task_id=") == 30  # each claimed once, in slices


def test_spread_reservations_each_arrive_at_their_time(transactional_db, fast_lead, user, worker, smtp):
    start = timezone.now() + timedelta(seconds=2.5)
    dues = {f"s{i}@example.com": start + timedelta(seconds=0.37 * i) for i in range(8)}
    for address, due in dues.items():
        reserve(user, address, due)
    wait_until(lambda: len(smtp.received) >= 8, timeout=30, what="8 mails")
    for mail in smtp.received:
        due = dues[mail.rcpt_tos[0]].timestamp()
        assert due <= mail.at <= due + 2.0, f"{mail.rcpt_tos[0]} arrived {mail.at - due:+.2f}s from its time"
