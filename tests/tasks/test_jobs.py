"""The job function run in this process against the real SMTP sink (no worker)."""

from datetime import timedelta

import pytest
from django.core import mail as django_mail
from django.utils import timezone

from notifications.models import Notification
from tasks import services
from tasks.delivery import TransientSendError
from tasks.jobs import send_task
from tasks.mail import MailSpec
from tasks.models import Delivery, Task

pytestmark = pytest.mark.django_db


def make_task(user, recipients=("a@example.com", "b@example.com"), **fields):
    defaults = {"status": "queued", "description": "news", "template": "welcome", "context": {"name": "Ann"}}
    defaults.update(fields)
    return Task.objects.create(owner=user, recipients=list(recipients), **defaults)


def test_send_task_renders_all_parts_per_recipient(user):
    task = make_task(user)
    send_task(task.pk)
    task.refresh_from_db()
    assert (task.status, task.progress, task.failed, task.attempts) == ("finished", 100, False, 1)
    assert "sent 2, failed 0" in task.log
    assert [m.to for m in django_mail.outbox] == [["a@example.com"], ["b@example.com"]]
    message = django_mail.outbox[0]
    assert message.subject == "Welcome to reservemail, Ann"
    assert "Hello Ann" in message.body
    assert message.alternatives[0].mimetype == "text/html"
    deliveries = list(Delivery.objects.filter(task=task))
    assert [d.status for d in deliveries] == ["sent", "sent"]
    assert message.extra_headers["Message-ID"] == deliveries[0].message_id
    progress = Notification.objects.get(owner=user, name="task_progress").payload["data"]
    assert progress[0]["status"] == "finished" and progress[0]["progress"] == 100


def test_send_task_over_smtp_reaches_sink(user, smtp):
    task = make_task(user)
    send_task(task.pk)
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == ["a@example.com", "b@example.com"]
    ids = set(Delivery.objects.filter(task=task).values_list("message_id", flat=True))
    assert {r.message_id for r in smtp.received} == ids


def test_send_task_skips_canceled_task(user):
    task = make_task(user, status="canceled")
    send_task(task.pk)
    assert django_mail.outbox == []
    assert Task.objects.get(pk=task.pk).status == "canceled"


def test_send_task_never_resends_a_recorded_recipient(user):
    task = make_task(user)
    Delivery.objects.create(task=task, address="a@example.com", status="sent", message_id="<x@y>")
    send_task(task.pk)
    assert [m.to for m in django_mail.outbox] == [["b@example.com"]]


def test_send_task_waits_until_due_time(user):
    due = timezone.now() + timedelta(seconds=1.5)
    task = make_task(user, status="reserved", reserved_at=due)
    send_task(task.pk)
    task.refresh_from_db()
    assert task.started_at >= due
    assert task.status == "finished"


def test_send_task_released_far_too_early_does_not_claim(user):
    task = make_task(user, status="reserved", reserved_at=timezone.now() + timedelta(minutes=5))
    send_task(task.pk)
    assert Task.objects.get(pk=task.pk).status == "reserved"
    assert django_mail.outbox == []


def test_permanent_refusal_fails_that_recipient_only(user, smtp):
    smtp.handler.refuse["b@example.com"] = "550 5.1.1 no such user"
    task = make_task(user)
    send_task(task.pk)
    task.refresh_from_db()
    assert (task.status, task.failed) == ("finished", True)
    assert "permanent failure b@example.com: 550 5.1.1 no such user" in task.log
    assert Delivery.objects.get(task=task, address="b@example.com").status == "failed"
    assert [r.rcpt_tos for r in smtp.received] == [["a@example.com"]]


def test_transient_failure_outside_rq_fails_task(user, smtp):
    smtp.handler.fail_queue.append("451 4.3.0 try later")
    task = make_task(user, recipients=("a@example.com",))
    with pytest.raises(TransientSendError, match="451"):
        send_task(task.pk)
    task.refresh_from_db()
    assert (task.status, task.failed) == ("finished", True)
    assert "giving up" in task.log
    assert Delivery.objects.get(task=task).status == "pending"


def test_reserve_then_run_in_process_worker(user, fast_lead, django_capture_on_commit_callbacks):
    """A burst worker in this process (SimpleWorker: no fork) runs a due job from the real queue."""
    import django_rq

    spec = MailSpec(template="welcome", recipients=("a@example.com",), context={})
    with django_capture_on_commit_callbacks(execute=True):
        task = services.enqueue_task(owner=user, mail=spec, description="now")
    django_rq.get_worker("default").work(burst=True)
    assert Task.objects.get(pk=task.pk).status == "finished"
    assert [m.to for m in django_mail.outbox] == [["a@example.com"]]
