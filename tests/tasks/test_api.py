"""The REST API under /api/tasks/: every endpoint, every error code, owner isolation, idempotency, limits."""

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rq.registry import ScheduledJobRegistry

from tasks import scheduler, services, transitions
from tasks.mail import MailSpec
from tasks.models import IdempotencyKey, Task
from tests.harness import at_once, free_port

pytestmark = pytest.mark.django_db

MAIL = MailSpec(template="welcome", recipients=("a@example.com", "b@example.com"), context={"name": "A"})
SEND = {"template": "welcome", "recipients": ["a@example.com"], "context": {"name": "Ann"}, "description": "Hi Ann"}


def iso(dt):
    """A datetime as DRF renders it: in the current time zone, ISO 8601 with its offset."""
    if dt is None:
        return None
    text = timezone.localtime(dt).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def body_of(task, **extra):
    task.refresh_from_db()
    return {
        "id": task.pk,
        "description": task.description,
        "template": task.template,
        "recipients": task.recipients,
        "context": task.context,
        "status": task.status,
        "failed": task.failed,
        "progress": task.progress,
        "attempts": task.attempts,
        "queue": task.queue,
        "reserved_at": iso(task.reserved_at),
        "created_at": iso(task.created_at),
        "started_at": iso(task.started_at),
        "ended_at": iso(task.ended_at),
        "is_test": task.is_test,
        **extra,
    }


def client_for(user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(user):
    return client_for(user)


@pytest.fixture
def other_api(other_user):
    return client_for(other_user)


def scheduled_score(conn, task_id, queue="high"):
    return conn.zscore(ScheduledJobRegistry(queue, connection=conn).key, str(task_id))


def reserve(owner, capture, minutes=30, description="June news"):
    with capture(execute=True):
        return services.reserve_task(
            owner=owner, scheduled_at=timezone.now() + timedelta(minutes=minutes), mail=MAIL, description=description
        )


def in_state(owner, status, **fields):
    """A row in a state the services reach only through a worker (test setup, not a transition)."""
    now = timezone.now()
    return Task.objects.create(
        owner=owner,
        description=f"{status} one",
        template="welcome",
        recipients=["a@example.com"],
        context={},
        status=status,
        started_at=now,
        ended_at=now,
        progress=100,
        attempts=1,
        **fields,
    )


# --- list and retrieve ---------------------------------------------------------------------------


def test_list_returns_own_tasks_newest_first_paginated(api, user, other_user, django_capture_on_commit_callbacks):
    first = reserve(user, django_capture_on_commit_callbacks, description="first")
    second = reserve(user, django_capture_on_commit_callbacks, description="second")
    reserve(other_user, django_capture_on_commit_callbacks, description="not mine")
    response = api.get("/api/tasks/")
    assert response.status_code == 200
    assert response.json() == {
        "count": 2,
        "next": None,
        "previous": None,
        "results": [body_of(second), body_of(first)],
    }


def test_list_filters_by_status_and_pages(api, user):
    due = timezone.now() + timedelta(hours=1)
    reserved = [
        Task.objects.create(
            owner=user,
            description=f"r{i}",
            template="welcome",
            recipients=["a@example.com"],
            status="reserved",
            reserved_at=due,
            queue="high",
        )
        for i in range(21)
    ]
    finished = in_state(user, "finished")
    response = api.get("/api/tasks/", {"status": "reserved"})
    data = response.json()
    assert response.status_code == 200
    assert data["count"] == 21
    assert [t["id"] for t in data["results"]] == [t.pk for t in reversed(reserved[1:])]
    assert data["next"] == "http://testserver/api/tasks/?page=2&status=reserved"
    page2 = api.get(data["next"]).json()
    assert [t["id"] for t in page2["results"]] == [reserved[0].pk]
    assert page2["previous"] == "http://testserver/api/tasks/?status=reserved"
    only_finished = api.get("/api/tasks/?status=finished").json()
    assert [t["id"] for t in only_finished["results"]] == [finished.pk]


def test_list_rejects_unknown_status(api):
    response = api.get("/api/tasks/?status=lost")
    assert response.status_code == 400
    assert response.json() == {"status": ['"lost" is not a valid choice.']}


def test_list_query_count_does_not_grow_with_rows(api, user, django_assert_num_queries):
    for _ in range(5):
        in_state(user, "finished")
    # token lookup, count, page
    with django_assert_num_queries(3):
        response = api.get("/api/tasks/")
    assert response.json()["count"] == 5


def test_retrieve_shows_log_and_deliveries(api, user):
    task = in_state(user, "finished", log="2026-05-01T10:00:00+0000 attempt 1: sent 1, failed 0\n")
    delivery = task.deliveries.create(
        address="a@example.com", status="sent", message_id="<m1@x>", sent_at=timezone.now()
    )
    response = api.get(f"/api/tasks/{task.pk}/")
    assert response.status_code == 200
    assert response.json() == body_of(
        task,
        log=task.log,
        deliveries=[
            {
                "address": "a@example.com",
                "name": "",
                "context": {},
                "status": "sent",
                "sent_at": iso(delivery.sent_at),
                "error": "",
            }
        ],
    )


def test_retrieve_unknown_or_non_numeric_id_is_404(api):
    assert api.get("/api/tasks/999999/").json() == {"detail": "No Task matches the given query.", "code": "not_found"}
    assert api.get("/api/tasks/abc/").status_code == 404


# --- owner isolation: another user's task is invisible for every object endpoint ------------------


@pytest.mark.parametrize(
    ("method", "suffix", "data"),
    [
        ("get", "", None),
        ("patch", "", {"scheduled_at": "2099-01-01T00:00:00Z"}),
        ("post", "cancel/", None),
    ],
    ids=["retrieve", "patch", "cancel"],
)
def test_other_users_task_is_404(other_api, user, method, suffix, data, redis_conn, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = body_of(task)
    response = getattr(other_api, method)(f"/api/tasks/{task.pk}/{suffix}", data, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "No Task matches the given query.", "code": "not_found"}
    assert body_of(task) == before
    assert scheduled_score(redis_conn, task.pk) is not None


# --- create ---------------------------------------------------------------------------------------


def test_create_without_time_sends_now(api, user, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/tasks/", SEND, format="json")
    assert response.status_code == 201
    task = Task.objects.get()
    assert response.json() == body_of(task)
    assert (task.owner, task.status, task.queue, task.reserved_at) == (user, "queued", "default", None)
    assert (task.recipients, task.context, task.description) == (["a@example.com"], {"name": "Ann"}, "Hi Ann")
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [str(task.pk).encode()]


def test_create_with_offset_time_reserves(api, redis_conn, django_capture_on_commit_callbacks):
    due = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/tasks/", {**SEND, "scheduled_at": due.isoformat()}, format="json")
    assert response.status_code == 201
    task = Task.objects.get()
    assert response.json() == body_of(task)
    assert (task.status, task.reserved_at, task.queue) == ("reserved", due, "high")
    assert scheduled_score(redis_conn, task.pk) == scheduler.release_time(due).timestamp()


def test_create_naive_time_is_read_in_default_zone(api):
    local = timezone.localtime(timezone.now() + timedelta(days=2)).replace(microsecond=0, tzinfo=None)
    response = api.post("/api/tasks/", {**SEND, "scheduled_at": local.isoformat()}, format="json")
    assert response.status_code == 201
    task = Task.objects.get()
    assert str(timezone.get_default_timezone()) == "Asia/Seoul"
    assert task.reserved_at == timezone.make_aware(local, timezone.get_default_timezone())
    assert response.json()["reserved_at"] == timezone.make_aware(local).isoformat()


def test_create_naive_time_is_read_in_session_users_zone(user):
    client = APIClient()
    client.force_login(user)
    session = client.session
    session["reservemail_timezone"] = "America/New_York"
    session.save()
    local = (timezone.now() + timedelta(days=2)).replace(microsecond=0, tzinfo=None)
    response = client.post("/api/tasks/", {**SEND, "scheduled_at": local.isoformat()}, format="json")
    assert response.status_code == 201
    import zoneinfo

    expected = timezone.make_aware(local, zoneinfo.ZoneInfo("America/New_York"))
    assert Task.objects.get().reserved_at == expected
    assert response.json()["reserved_at"] == expected.isoformat()


def test_create_missing_fields_are_field_errors(api):
    response = api.post("/api/tasks/", {}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "template": ["This field is required."],
        "recipients": ["This field is required."],
        "description": ["This field is required."],
    }
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    ("recipients", "index", "message"),
    [
        (["not-an-address"], "0", "“not-an-address” is not a valid e-mail address."),
        (["a@example.com"] * 2 + ["b@x"], "2", "“b@x” is not a valid e-mail address."),
    ],
)
def test_create_bad_recipient_is_400_keyed_by_its_position(api, redis_conn, recipients, index, message):
    response = api.post("/api/tasks/", {**SEND, "recipients": recipients}, format="json")
    assert response.status_code == 400
    assert response.json() == {"recipients": {index: [message]}}
    assert Task.objects.count() == 0
    assert redis_conn.keys("rq:*") == []


def test_create_too_many_recipients_is_400(api, settings):
    settings.TASK_MAX_RECIPIENTS = 2
    response = api.post(
        "/api/tasks/", {**SEND, "recipients": ["a@x.example", "b@x.example", "c@x.example"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "At most 2 recipients per send.",
        "code": "invalid",
        "recipients": ["At most 2 recipients per send."],
    }


def test_create_too_soon_is_400_on_scheduled_at(api, redis_conn):
    response = api.post(
        "/api/tasks/", {**SEND, "scheduled_at": (timezone.now() + timedelta(seconds=5)).isoformat()}, format="json"
    )
    message = "The reservation time must be at least 60 seconds in the future."
    assert response.status_code == 400
    assert response.json() == {"detail": message, "code": "invalid", "scheduled_at": [message]}
    assert Task.objects.count() == 0
    assert redis_conn.keys("rq:*") == []


def test_create_shape_errors_are_drf_field_errors(api):
    response = api.post(
        "/api/tasks/",
        {
            "template": "nope",
            "recipients": "a@example.com",
            "context": [],
            "description": "x" * 201,
            "scheduled_at": "tomorrow",
        },
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "template": ['"nope" is not a valid choice.'],
        "recipients": ['Expected a list of items but got type "str".'],
        "context": ['Expected a dictionary of items but got type "list".'],
        "description": ["Ensure this field has no more than 200 characters."],
        "scheduled_at": [
            "Datetime has wrong format. Use one of these formats instead: "
            "YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
        ],
    }


def test_create_when_queue_unreachable_is_503_and_nothing_left_accepted(transactional_db, user, settings):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings.RQ_QUEUES = {name: {**cfg, "URL": dead} for name, cfg in settings.RQ_QUEUES.items()}
    api = client_for(user)
    response = api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="k-503")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert response.json() == {
        "detail": "The mail queue is not reachable right now; nothing was sent. Please try again shortly.",
        "code": "queue_unavailable",
    }
    task = Task.objects.get()
    assert (task.status, task.failed) == ("canceled", True)
    assert "queue unavailable, not sent" in task.log
    # The refused send is not replayed: the same key may be used again once Redis is back.
    assert IdempotencyKey.objects.count() == 0


# --- reschedule (PATCH) ---------------------------------------------------------------------------


def test_patch_reschedules_reservation(api, user, redis_conn, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    later = (timezone.now() + timedelta(hours=5)).replace(microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(f"/api/tasks/{task.pk}/", {"scheduled_at": later.isoformat()}, format="json")
    assert response.status_code == 200
    assert response.json() == body_of(task)
    assert task.reserved_at == later
    assert scheduled_score(redis_conn, task.pk) == scheduler.release_time(later).timestamp()


def test_patch_of_queued_task_is_409(api, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        task = services.enqueue_task(owner=user, mail=MAIL, description="now")
    response = api.patch(
        f"/api/tasks/{task.pk}/", {"scheduled_at": (timezone.now() + timedelta(hours=1)).isoformat()}, format="json"
    )
    assert response.status_code == 409
    assert response.json() == {
        "detail": f"Task #{task.pk} is queued to be sent now and has no reservation time.",
        "code": "task_queued",
    }


def test_patch_bad_time_unknown_fields_and_empty_body_are_400(api, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = body_of(task)
    soon = api.patch(f"/api/tasks/{task.pk}/", {"scheduled_at": timezone.now().isoformat()}, format="json")
    message = "The reservation time must be at least 60 seconds in the future."
    assert (soon.status_code, soon.json()) == (400, {"detail": message, "code": "invalid", "scheduled_at": [message]})
    other = api.patch(
        f"/api/tasks/{task.pk}/",
        {"scheduled_at": (timezone.now() + timedelta(hours=1)).isoformat(), "status": "finished", "owner": 2},
        format="json",
    )
    assert (other.status_code, other.json()) == (
        400,
        {
            "owner": ["Unknown field."],
            "status": ["Unknown field. To cancel, POST to the task's cancel/ endpoint."],
        },
    )
    missing = api.patch(f"/api/tasks/{task.pk}/", {}, format="json")
    assert (missing.status_code, missing.json()) == (
        400,
        {"non_field_errors": ["Give at least one of: template, recipients, context, description, scheduled_at."]},
    )
    null = api.patch(f"/api/tasks/{task.pk}/", {"scheduled_at": None}, format="json")
    assert (null.status_code, null.json()) == (400, {"scheduled_at": ["This field may not be null."]})
    assert body_of(task) == before


def test_put_and_delete_are_not_allowed(api, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    assert api.put(f"/api/tasks/{task.pk}/", {}, format="json").json() == {
        "detail": 'Method "PUT" not allowed.',
        "code": "method_not_allowed",
    }
    assert api.delete(f"/api/tasks/{task.pk}/").status_code == 405


# --- cancel ---------------------------------------------------------------------------------------


def test_cancel_reservation_removes_job(api, user, redis_conn, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    assert scheduled_score(redis_conn, task.pk) is not None
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/tasks/{task.pk}/cancel/")
    assert response.status_code == 200
    assert response.json() == {**body_of(task), "detail": f"Mail #{task.pk} canceled; nothing was sent."}
    assert task.status == "canceled" and task.ended_at is not None
    assert scheduled_score(redis_conn, task.pk) is None
    assert not redis_conn.exists(f"rq:job:{task.pk}")


def test_cancel_running_task_stops_it(api, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        task = services.enqueue_task(owner=user, mail=MAIL, description="long")
    assert transitions.claim_own(task_id=task.pk, now=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/tasks/{task.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled"
    assert f"stopped by {user.username}" in Task.objects.get(pk=task.pk).log


@pytest.mark.parametrize(
    ("status", "message"),
    [("finished", "Task #{id} has already finished."), ("canceled", "Task #{id} was canceled.")],
)
def test_cancel_of_ended_task_is_409_with_reason(api, user, status, message):
    task = in_state(user, status)
    response = api.post(f"/api/tasks/{task.pk}/cancel/")
    assert response.status_code == 409
    assert response.json() == {"detail": message.format(id=task.pk), "code": f"task_{status}"}
    assert Task.objects.get(pk=task.pk).status == status


# --- authentication -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/tasks/"),
        ("post", "/api/tasks/"),
        ("get", "/api/tasks/1/"),
        ("patch", "/api/tasks/1/"),
        ("post", "/api/tasks/1/cancel/"),
        ("get", "/api/notifications/"),
    ],
)
def test_without_credentials_is_401(method, path):
    response = getattr(APIClient(), method)(path, {}, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}
    assert response["WWW-Authenticate"] == "Token"


def test_bad_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    response = client.get("/api/tasks/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}


def test_token_endpoint_gives_a_token_that_works(user):
    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "pw-alice-123"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=user).key}
    wrong = APIClient().post("/api/auth/token/", {"username": "alice", "password": "nope"}, format="json")
    assert wrong.status_code == 400


def test_session_auth_requires_csrf_for_writes(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/tasks/", HTTP_ACCEPT="application/json").status_code == 200
    refused = client.post("/api/tasks/", SEND, content_type="application/json")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "CSRF Failed: CSRF cookie not set.", "code": "permission_denied"}
    client.get("/accounts/login/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/tasks/", SEND, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201


def test_browsable_api_renders_for_signed_in_user(user):
    client = Client()
    client.force_login(user)
    root = client.get("/api/", HTTP_ACCEPT="text/html")
    assert root.status_code == 200 and b"http://testserver/api/tasks/" in root.content
    page = client.get("/api/tasks/", HTTP_ACCEPT="text/html")
    assert page.status_code == 200
    assert b"Task List" in page.content and b'name="csrfmiddlewaretoken"' in page.content


# --- idempotency ----------------------------------------------------------------------------------


def test_same_key_replays_first_response_and_creates_nothing_new(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
        second = api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert "Idempotent-Replayed" not in first and second["Idempotent-Replayed"] == "true"
    assert Task.objects.count() == 1


def test_same_key_with_different_body_is_422(api):
    api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="order-2")
    response = api.post("/api/tasks/", {**SEND, "description": "other"}, format="json", HTTP_IDEMPOTENCY_KEY="order-2")
    assert response.status_code == 422
    assert response.json() == {
        "detail": "This Idempotency-Key was already used for a different request; use a new key for a new request.",
        "code": "idempotency_key_reused",
    }
    assert Task.objects.count() == 1


def test_key_is_per_user_and_expires_after_a_day(api, other_api):
    api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    other = other_api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert other.status_code == 201 and "Idempotent-Replayed" not in other
    assert Task.objects.count() == 2
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))
    again = api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="shared")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Task.objects.count() == 3


def test_errors_are_not_stored_so_the_key_can_be_retried(api):
    bad = api.post("/api/tasks/", {**SEND, "recipients": ["nope"]}, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert bad.status_code == 400
    good = api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert good.status_code == 201 and "Idempotent-Replayed" not in good


def test_malformed_key_is_400(api):
    response = api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="has space")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The Idempotency-Key header must be 1 to 255 visible ASCII characters.",
        "code": "invalid_idempotency_key",
    }
    assert api.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="x" * 256).status_code == 400
    assert Task.objects.count() == 0


def test_cancel_with_key_replays_instead_of_409(api, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(f"/api/tasks/{task.pk}/cancel/", HTTP_IDEMPOTENCY_KEY="c1")
    second = api.post(f"/api/tasks/{task.pk}/cancel/", HTTP_IDEMPOTENCY_KEY="c1")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == first.json() and second["Idempotent-Replayed"] == "true"
    assert api.post(f"/api/tasks/{task.pk}/cancel/").status_code == 409


def test_concurrent_requests_with_same_key_create_one_task(transactional_db, user):
    token = Token.objects.create(user=user).key
    results = []

    def post() -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        response = client.post("/api/tasks/", SEND, format="json", HTTP_IDEMPOTENCY_KEY="race")
        results.append((response.status_code, response.json(), response.get("Idempotent-Replayed")))

    assert at_once(4, post, after=lambda: connection.close()) == []
    assert len(results) == 4
    assert Task.objects.count() == 1
    assert {status for status, _, _ in results} == {201}
    assert all(body == results[0][1] for _, body, _ in results)
    assert sorted(replayed or "" for _, _, replayed in results) == ["", "true", "true", "true"]


# --- throttle and quota ---------------------------------------------------------------------------


def test_create_throttle_is_per_user(api, other_api, settings):
    settings.API_CREATE_RATE = "2/min"
    assert [api.post("/api/tasks/", SEND, format="json").status_code for _ in range(2)] == [201, 201]
    response = api.post("/api/tasks/", SEND, format="json")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert re.fullmatch(r"Request was throttled\. Expected available in \d+ seconds?\.", response.json()["detail"])
    assert 0 < int(response["Retry-After"]) <= 60
    assert api.get("/api/tasks/").status_code == 200  # reads are not throttled
    assert other_api.post("/api/tasks/", SEND, format="json").status_code == 201
    assert Task.objects.count() == 3


def test_daily_quota_refuses_with_clear_message(api, user, settings):
    settings.API_DAILY_SEND_QUOTA = 2
    old = in_state(user, "finished")
    Task.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=24, minutes=1))
    assert [api.post("/api/tasks/", SEND, format="json").status_code for _ in range(2)] == [201, 201]
    response = api.post("/api/tasks/", {**SEND, "description": "third"}, format="json")
    assert response.status_code == 429
    assert response.json() == {
        "detail": "Daily send limit reached: 2 sends per 24 hours. Try again in 1440 minutes.",
        "code": "daily_quota_exceeded",
    }
    assert 86000 < int(response["Retry-After"]) <= 86400
    assert Task.objects.filter(owner=user).count() == 3


# --- strict query parameters and unknown paths (found by the schemathesis run) --------------------


@pytest.mark.parametrize("query", ["status=", "page=", "status=&page=1"])
def test_blank_query_parameter_is_400_not_ignored(api, query):
    response = api.get(f"/api/tasks/?{query}")
    assert response.status_code == 400
    assert list(response.json()) == [query.split("=")[0]]


def test_page_out_of_range_is_json_404(api):
    assert api.get("/api/tasks/?page=7").json() == {"detail": "Invalid page.", "code": "not_found"}


@pytest.mark.parametrize("path", ["/api/nothing/", "/api/tasks/1.5/", "/api/tasks/-1/cancel/x"])
def test_unknown_api_path_is_json_404_for_any_method(api, path):
    for method in ("get", "post", "patch"):
        response = getattr(api, method)(path)
        assert (response.status_code, response["Content-Type"]) == (404, "application/json")
        assert response.json()["code"] == "not_found"


def test_create_accepts_json_only(api):
    response = api.post(
        "/api/tasks/", "template=welcome&description=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"
    assert Task.objects.count() == 0


@pytest.mark.e2e
def test_api_send_is_delivered_by_a_real_worker(transactional_db, user, worker, smtp):
    from tests.harness import wait_until

    api = client_for(user)
    created = api.post("/api/tasks/", {**SEND, "recipients": ["x@example.com", "y@example.com"]}, format="json")
    assert created.status_code == 201
    task_id = created.json()["id"]
    done = wait_until(
        lambda: (body := api.get(f"/api/tasks/{task_id}/").json())["status"] == "finished" and body,
        timeout=30,
        what="the task to finish",
    )
    assert (done["failed"], done["progress"]) == (False, 100)
    assert sorted((d["address"], d["status"]) for d in done["deliveries"]) == [
        ("x@example.com", "sent"),
        ("y@example.com", "sent"),
    ]
    wait_until(lambda: len(smtp.received) == 2, timeout=5, what="two messages at the SMTP sink")
    assert {r.message["Subject"] for r in smtp.received} == {"Welcome to reservemail, Ann"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"recipients": [{"address": "x@example.com", "name": "\ud800"}]}, "recipients"),
        ({"recipients": ['"\ud800" <x@example.com>']}, "recipients"),
        ({"context": {"message": "a\u0000b"}}, "context"),
        ({"context": {"a\u0000": "b"}}, "context"),
    ],
    ids=["surrogate-name", "surrogate-quoted-name", "nul-value", "nul-key"],
)
def test_create_with_text_no_database_can_hold_is_400_and_stores_nothing(api, redis_conn, body, field):
    """A lone surrogate (UTF-8 cannot encode it) or U+0000 (PostgreSQL refuses it): 400, not a 500 or a stuck row."""
    raw = json.dumps({**SEND, **body})  # ASCII with \u escapes, as a client sends a lone surrogate
    response = api.post("/api/tasks/", raw, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()
    assert Task.objects.count() == 0
    assert redis_conn.keys("rq:*") == []
