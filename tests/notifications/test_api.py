"""GET /api/notifications/?since= : the poll payload for API clients, time remaining computed at read."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from notifications.remaining import format_remaining
from tasks import services
from tasks.mail import MailSpec

pytestmark = pytest.mark.django_db

MAIL = MailSpec(template="welcome", recipients=("a@example.com",), context={"name": "A"})


@pytest.fixture
def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def reserve(owner, capture, delta):
    with capture(execute=True):
        return services.reserve_task(
            owner=owner, scheduled_at=timezone.now() + delta, mail=MAIL, description="June news"
        )


def test_poll_returns_reservation_with_time_remaining(api, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks, timedelta(minutes=30, seconds=30))
    before = timezone.now()
    response = api.get("/api/notifications/")
    assert response.status_code == 200
    server_time = float(response["X-Server-Time"])
    assert before.timestamp() - 0.001 <= server_time <= timezone.now().timestamp() + 0.001
    [item] = response.json()
    assert item["name"] == "task_reserve"
    [entry] = item["data"]
    expected_seconds = int((task.reserved_at.timestamp() - server_time) // 1) + 1
    assert entry == {
        "task_id": task.pk,
        "status": "reserved",
        "description": "June news",
        "progress": 0,
        "failed": False,
        "reserved_at": timezone.localtime(task.reserved_at).isoformat(),
        "remaining_seconds": pytest.approx(expected_seconds, abs=1),
        "remaining_text": format_remaining(entry["remaining_seconds"], "en"),
    }
    assert entry["remaining_text"].startswith("30m ") and entry["remaining_text"].endswith("s left")


def test_poll_since_returns_only_newer_rows_and_never_other_users(
    api, user, other_user, django_capture_on_commit_callbacks
):
    reserve(user, django_capture_on_commit_callbacks, timedelta(hours=1))
    reserve(other_user, django_capture_on_commit_callbacks, timedelta(hours=1))
    [item] = api.get("/api/notifications/").json()
    assert [e["task_id"] for e in item["data"]] == [t.pk for t in user.tasks.all()]
    assert api.get(f"/api/notifications/?since={item['timestamp']}").json() == []
    assert len(api.get(f"/api/notifications/?since={item['timestamp'] - 1}").json()) == 1


def test_poll_remaining_text_follows_the_language(api, user, django_capture_on_commit_callbacks):
    reserve(user, django_capture_on_commit_callbacks, timedelta(hours=2, minutes=5, seconds=30))
    [item] = api.get("/api/notifications/", HTTP_ACCEPT_LANGUAGE="ko").json()
    entry = item["data"][0]
    assert entry["remaining_text"] == format_remaining(entry["remaining_seconds"], "ko")
    assert entry["remaining_text"].startswith("2시 5분 ") and entry["remaining_text"].endswith("초 남음")


@pytest.mark.parametrize("since", ["abc", "", "-1", "nan"])
def test_poll_bad_since_is_400(api, since):
    response = api.get(f"/api/notifications/?since={since}")
    assert response.status_code == 400
    assert list(response.json()) == ["since"]
