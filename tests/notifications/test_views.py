"""The poll endpoint and the dismiss endpoint, through Django's test client."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from notifications.models import Notification
from notifications.remaining import format_remaining
from notifications.services import merge_notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    client.get("/notifications/")  # warm up: the session learns the user's time zone
    return client


def reserve_entry(task_id, reserved_at, status="reserved"):
    return {"task_id": task_id, "status": status, "description": f"t{task_id}", "reserved_at": reserved_at.isoformat()}


def test_poll_returns_only_rows_changed_after_since(signed_in, user):
    old = merge_notification(owner_id=user.pk, name="task_progress", data={"task_id": 1, "status": "running"})
    new = merge_notification(owner_id=user.pk, name="unread_message_count", data=4)

    everything = signed_in.get("/notifications/?since=0")
    assert everything.status_code == 200
    assert [(r["name"], r["timestamp"]) for r in everything.json()] == [
        ("task_progress", old.timestamp),
        ("unread_message_count", new.timestamp),
    ]
    assert signed_in.get(f"/notifications/?since={old.timestamp}").json() == [
        {"name": "unread_message_count", "data": 4, "timestamp": new.timestamp}
    ]
    assert signed_in.get(f"/notifications/?since={new.timestamp}").json() == []


def test_poll_answers_with_the_server_clock_and_no_caching(signed_in):
    before = timezone.now().timestamp()
    response = signed_in.get("/notifications/")
    assert before - 0.01 <= float(response["X-Server-Time"]) <= timezone.now().timestamp() + 0.01
    assert response["Cache-Control"] == "no-store"


def test_poll_shows_only_the_signed_in_users_rows_exact_owner(client, django_user_model):
    bob = django_user_model.objects.create_user(username="bob", password="pw-bob-123")
    bobby = django_user_model.objects.create_user(username="bobby", password="pw-bobby-123")
    merge_notification(owner_id=bob.pk, name="task_progress", data={"task_id": 1, "status": "running"})
    merge_notification(owner_id=bobby.pk, name="task_progress", data={"task_id": 2, "status": "running"})
    merge_notification(owner_id=bobby.pk, name="unread_message_count", data=9)

    client.force_login(bob)
    body = client.get("/notifications/?since=0").json()
    assert [(r["name"], [e["task_id"] for e in r["data"]]) for r in body] == [("task_progress", [1])]


@pytest.mark.parametrize(
    ("language", "pattern"),
    [("ko", r"^2일 3시 5분 \d+초 남음$"), ("en", r"^2d 3h 5m \d+s left$")],
)
def test_poll_computes_time_left_at_read_time_in_the_users_language(signed_in, user, language, pattern):
    due = timezone.now().replace(microsecond=0) + timedelta(days=2, hours=3, minutes=5, seconds=30)
    merge_notification(owner_id=user.pk, name="task_reserve", data=reserve_entry(7, due))

    (row,) = signed_in.get("/notifications/", HTTP_ACCEPT_LANGUAGE=language).json()
    (entry,) = row["data"]
    full = int(timedelta(days=2, hours=3, minutes=5, seconds=30).total_seconds())
    assert full - 10 <= entry["remaining_seconds"] <= full
    assert entry["remaining_text"] == format_remaining(entry["remaining_seconds"], language)
    assert re.match(pattern, entry["remaining_text"]), entry["remaining_text"]
    stored = Notification.objects.get(owner=user, name="task_reserve").payload["data"][0]
    assert "remaining_seconds" not in stored and "remaining_text" not in stored, "derived values are never stored"


@pytest.mark.parametrize("name", ["task_reserve", "task_progress"])
def test_poll_gives_reserved_at_with_the_users_offset(signed_in, user, name):
    due = datetime(2031, 5, 1, 3, 0, tzinfo=UTC)
    merge_notification(owner_id=user.pk, name=name, data=reserve_entry(7, due))
    assert signed_in.get("/notifications/").json()[0]["data"][0]["reserved_at"] == "2031-05-01T12:00:00+09:00"

    signed_in.post("/settings/", {"time_zone": "America/New_York"})
    assert signed_in.get("/notifications/").json()[0]["data"][0]["reserved_at"] == "2031-04-30T23:00:00-04:00"


def test_poll_reads_a_past_reservation_as_due(signed_in, user):
    merge_notification(
        owner_id=user.pk, name="task_reserve", data=reserve_entry(7, timezone.now() - timedelta(minutes=5))
    )
    (entry,) = signed_in.get("/notifications/", HTTP_ACCEPT_LANGUAGE="en").json()[0]["data"]
    assert entry["remaining_seconds"] <= -299
    assert entry["remaining_text"] == "due now"


@pytest.mark.parametrize("tasks", [1, 300])
def test_poll_query_count_does_not_grow_with_tasks(signed_in, user, tasks, django_assert_max_num_queries):
    due = timezone.now() + timedelta(hours=1)
    merge_notification(owner_id=user.pk, name="task_reserve", data=[reserve_entry(i, due) for i in range(tasks)])
    merge_notification(
        owner_id=user.pk, name="task_progress", data=[{"task_id": i, "status": "running"} for i in range(tasks)]
    )
    with django_assert_max_num_queries(3):  # session, user, notifications
        body = signed_in.get("/notifications/?since=0").json()
    assert sum(len(row["data"]) for row in body) == 2 * tasks


def test_poll_without_sign_in_is_401_json(client):
    response = client.get("/notifications/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Sign in first.", "code": "not_authenticated"}


def test_poll_with_a_bad_since_is_400(signed_in):
    response = signed_in.get("/notifications/?since=yesterday")
    assert response.status_code == 400
    assert response.json() == {"since": ["since must be a number of seconds since the epoch, 0 or more."]}


def test_poll_does_not_accept_post(signed_in):
    assert signed_in.post("/notifications/").status_code == 405


def test_dismiss_is_post_with_csrf_and_drops_ended_entries(user):
    merge_notification(
        owner_id=user.pk,
        name="task_progress",
        data=[{"task_id": 1, "status": "finished"}, {"task_id": 2, "status": "running"}],
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/notifications/dismiss/?task_id=1").status_code == 405
    assert client.post("/notifications/dismiss/", {"task_id": 1}).status_code == 403
    client.get("/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post("/notifications/dismiss/", {"task_id": ["1", "2"]}, HTTP_X_CSRFTOKEN=token)
    assert (response.status_code, response.json()) == (200, {"removed": 1})
    data = Notification.objects.get(owner=user, name="task_progress").payload["data"]
    assert data == [{"task_id": 2, "status": "running"}]


def test_dismiss_with_a_bad_task_id_is_400(signed_in):
    response = signed_in.post("/notifications/dismiss/", {"task_id": "x"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
