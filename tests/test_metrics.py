"""GET /metrics: who may read it, and the values it reports from the database and Redis."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions.services import suppress_address
from tasks import services
from tasks.jobs import send_task
from tasks.mail import MailSpec
from tasks.models import Delivery, Task
from tests.harness import free_port

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+|\+Inf)$')


def parse(text: str) -> dict[str, float]:
    """Parse the exposition text strictly: every line is a HELP, a TYPE or a valid sample."""
    samples = {}
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="ops", password="pw-ops-123", is_staff=True)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("who", "header", "status"),
    [
        ("anonymous", None, 401),
        ("user", None, 401),
        ("anonymous", "Bearer wrong-token", 401),
        ("anonymous", "Basic s3cret-metrics-token", 401),
        ("anonymous", "Bearer s3cret-metrics-token", 200),
        ("staff", None, 200),
    ],
)
def test_metrics_requires_staff_session_or_token(client, settings, user, staff, who, header, status):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    if who != "anonymous":
        client.force_login(staff if who == "staff" else user)
    headers = {"Authorization": header} if header else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == status
    if status == 200:
        assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert "no-cache" in response["Cache-Control"]
    else:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"reservemail_" not in response.content


@pytest.mark.django_db
def test_metrics_without_configured_token_refuse_any_bearer(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def _task(user, status, **fields):
    return Task.objects.create(
        owner=user, description=status, template="welcome", recipients=["x@example.com"], status=status, **fields
    )


@pytest.mark.django_db
def test_metrics_report_tasks_due_overdue_latency_and_smtp_errors(client, staff, user):
    now = timezone.now()
    _task(user, "reserved", reserved_at=now + timedelta(minutes=30))
    _task(user, "reserved", reserved_at=now + timedelta(minutes=59))
    _task(user, "reserved", reserved_at=now + timedelta(hours=2))
    _task(user, "reserved", reserved_at=now - timedelta(minutes=5))  # overdue
    old = _task(user, "queued")
    Task.objects.filter(pk=old.pk).update(created_at=now - timedelta(minutes=10))  # overdue
    _task(user, "queued")  # just created: not overdue
    due = now - timedelta(minutes=2)
    done = _task(user, "finished", reserved_at=due, ended_at=now - timedelta(seconds=30), failed=True)
    for i, lateness in enumerate([0.7, 3.0, 40.0]):
        Delivery.objects.create(
            task=done, address=f"s{i}@example.com", status="sent", sent_at=due + timedelta(seconds=lateness)
        )
    Delivery.objects.create(task=done, address="f@example.com", status="failed", error="550 no such user")
    running = _task(user, "running")
    Delivery.objects.create(task=running, address="r@example.com", status="pending", error="451 try later")
    _task(user, "canceled")

    client.force_login(staff)
    metrics = parse(client.get("/metrics").content.decode())

    assert metrics['reservemail_tasks{status="reserved"}'] == 4
    assert metrics['reservemail_tasks{status="queued"}'] == 2
    assert metrics['reservemail_tasks{status="running"}'] == 1
    assert metrics['reservemail_tasks{status="finished"}'] == 1
    assert metrics['reservemail_tasks{status="canceled"}'] == 1
    assert metrics["reservemail_tasks_failed"] == 1
    assert metrics["reservemail_reservations_due_next_hour"] == 2
    assert metrics['reservemail_tasks_overdue{status="reserved"}'] == 1
    assert metrics['reservemail_tasks_overdue{status="queued"}'] == 1
    buckets = {
        le: metrics[f'reservemail_send_latency_seconds_bucket{{le="{le}"}}']
        for le in ("0.5", "1", "2", "5", "30", "60", "+Inf")
    }
    assert buckets == {"0.5": 0, "1": 1, "2": 1, "5": 2, "30": 2, "60": 3, "+Inf": 3}
    assert metrics["reservemail_send_latency_seconds_count"] == 3
    assert metrics["reservemail_send_latency_seconds_sum"] == pytest.approx(43.7)
    assert metrics['reservemail_smtp_errors{kind="permanent"}'] == 1
    assert metrics['reservemail_smtp_errors{kind="transient"}'] == 1


@pytest.mark.django_db
def test_metrics_report_queue_depth_from_redis(client, staff, user, fast_lead, django_capture_on_commit_callbacks):
    mail = MailSpec(template="welcome", recipients=("q@example.com",), context={"name": "Q"})
    with django_capture_on_commit_callbacks(execute=True):
        services.reserve_task(owner=user, scheduled_at=timezone.now() + timedelta(hours=1), mail=mail, description="m")
    client.force_login(staff)
    metrics = parse(client.get("/metrics").content.decode())
    assert metrics["reservemail_redis_up"] == 1
    assert metrics['reservemail_queue_jobs{queue="high",state="scheduled"}'] == 1
    assert metrics['reservemail_queue_jobs{queue="default",state="queued"}'] == 0
    assert metrics['reservemail_scheduler_active{queue="high"}'] == 0  # no worker is running
    assert metrics["reservemail_workers"] == 0
    assert metrics["reservemail_reservations_due_next_hour"] == 1


@pytest.mark.django_db
def test_metrics_say_redis_down_instead_of_failing(client, staff, settings):
    unused = f"redis://127.0.0.1:{free_port()}/0"
    settings.RQ_QUEUES = {name: {**config, "URL": unused} for name, config in settings.RQ_QUEUES.items()}
    client.force_login(staff)
    response = client.get("/metrics")
    assert response.status_code == 200
    metrics = parse(response.content.decode())
    assert metrics["reservemail_redis_up"] == 0
    assert 'reservemail_tasks{status="queued"}' in metrics


@pytest.mark.django_db
def test_metrics_count_recipients_skipped_for_the_suppression_list(
    client, staff, user, smtp, settings, django_capture_on_commit_callbacks
):
    settings.METRICS_WINDOW = 600
    suppress_address(address="b@example.com", list_name="newsletter", how="one_click")
    suppress_address(address="c@example.com", list_name="", how="admin")  # all bulk mail
    news = MailSpec(
        template="newsletter",
        recipients=("a@example.com", "b@example.com", "c@example.com"),
        context={"title": "June", "body": "News"},
    )
    welcome = MailSpec(template="welcome", recipients=("b@example.com",), context={"name": "B"})  # not bulk: sent
    with django_capture_on_commit_callbacks(execute=True):
        tasks = [services.enqueue_task(owner=user, mail=mail, description="m") for mail in (news, welcome)]
    for task in tasks:
        send_task(task.pk)
    statuses = sorted(Delivery.objects.values_list("task_id", "address", "status"))
    assert statuses == [
        (tasks[0].pk, "a@example.com", "sent"),
        (tasks[0].pk, "b@example.com", "suppressed"),
        (tasks[0].pk, "c@example.com", "suppressed"),
        (tasks[1].pk, "b@example.com", "sent"),
    ]
    client.force_login(staff)
    metrics = parse(client.get("/metrics").content.decode())
    assert metrics["reservemail_recipients_suppressed"] == 2
    assert metrics['reservemail_smtp_errors{kind="permanent"}'] == 0

    # One skipped before the window is no longer counted.
    Delivery.objects.filter(address="c@example.com").update(sent_at=timezone.now() - timedelta(seconds=601))
    metrics = parse(client.get("/metrics").content.decode())
    assert metrics["reservemail_recipients_suppressed"] == 1
