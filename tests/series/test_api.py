"""/api/series/: create, list, retrieve, PATCH, and the pause/resume/skip/end actions, whole bodies checked."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from series.models import Series
from tasks.models import Task

pytestmark = pytest.mark.django_db

BODY = {
    "template": "welcome",
    "recipients": ["a@example.com"],
    "context": {"name": "A"},
    "description": "weekly",
    "rule": "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0;COUNT=10",
    "zone": "Asia/Seoul",
}


@pytest.fixture
def api(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def create(api, **changes):
    return api.post("/api/series/", {**BODY, **changes}, format="json")


def test_create_returns_the_series_with_its_summary_and_first_occurrence(api, user):
    response = create(api)
    assert response.status_code == 201, response.json()
    body = response.json()
    series = Series.objects.get(pk=body["id"])
    [task] = Task.objects.filter(series=series)
    assert task.status == "reserved" and task.owner == user
    assert body["summary"] == "Every Monday and Thursday at 09:00, Asia/Seoul, 10 times"
    assert body["rule"] == BODY["rule"] and body["status"] == "active" and body["created_count"] == 1
    assert body["recipients"] == ["a@example.com"] and body["zone"] == "Asia/Seoul"
    local = task.reserved_at.astimezone(timezone.get_current_timezone())
    assert body["next_at"] == local.isoformat()
    assert set(body) == {
        "id", "description", "template", "recipients", "context", "rule", "zone", "summary", "start_at",
        "status", "next_at", "created_count", "created_at", "log",
    }  # fmt: skip


def test_create_refuses_an_unsupported_rule_with_a_field_error(api):
    response = create(api, rule="FREQ=DAILY;BYSETPOS=1")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_rule"
    assert response.json()["detail"].startswith("BYSETPOS is not supported;")
    assert not Series.objects.exists()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=DAILY;BYHOUR=25", "BYHOUR value 25 is out of range."),
        ("FREQ=DAILY;COUNT=2;UNTIL=20261231", "A rule ends either after COUNT occurrences or on UNTIL, not both."),
        ("FREQ=DAILY;;", "“” is not KEY=VALUE."),
        ("FREQ=DAILY;FREQ=WEEKLY", "FREQ is given twice."),
        ("FREQ=DAILY;UNTIL=2026-12-31", "UNTIL must look like 20261231, 20261231T235959 or 20261231T235959Z."),
        ("FREQ=DAILY;UNTIL=20270231", "UNTIL is not a real date."),
    ],
)
def test_every_invalid_rule_is_a_rule_field_error(api, rule, message):
    response = create(api, rule=rule)
    assert response.status_code == 400
    assert response.json() == {"detail": message, "code": "invalid_rule", "rule": [message]}
    assert not Series.objects.exists() and not Task.objects.exists()


def test_create_with_a_start_beyond_the_horizon_is_a_start_at_error(api):
    start = (timezone.now() + timedelta(days=400)).astimezone(timezone.get_current_timezone()).replace(microsecond=0)
    response = create(api, rule="FREQ=DAILY", start_at=start.isoformat())
    message = f"The first occurrence ({start:%Y-%m-%d %H:%M} Asia/Seoul) must be within 365 days from now."
    assert response.status_code == 400
    assert response.json() == {"detail": message, "code": "invalid_rule", "start_at": [message]}
    assert not Series.objects.exists() and not Task.objects.exists()


def test_create_with_a_date_alone_as_start_is_a_start_at_error(api):
    response = create(api, rule="FREQ=DAILY", start_at="2027-01-10")
    assert response.status_code == 400
    assert response.json()["start_at"][0].startswith("Give a time of day with the date")
    assert not Series.objects.exists() and not Task.objects.exists()


def test_patch_start_beyond_the_horizon_is_refused_and_changes_nothing(api):
    mine = create(api).json()
    waiting = list(Task.objects.filter(series_id=mine["id"]).values_list("pk", "status", "reserved_at"))
    response = api.patch(f"/api/series/{mine['id']}/", {"start_at": "2099-01-01T00:00"}, format="json")
    message = "The first occurrence (2099-01-01 09:00 Asia/Seoul) must be within 365 days from now."  # BYHOUR=9
    assert response.status_code == 400
    assert response.json() == {"detail": message, "code": "invalid_rule", "start_at": [message]}
    assert api.get(f"/api/series/{mine['id']}/").json() == mine
    assert list(Task.objects.filter(series_id=mine["id"]).values_list("pk", "status", "reserved_at")) == waiting


def test_create_refuses_scheduled_at(api):
    response = create(api, scheduled_at="2026-06-01T09:00:00+09:00")
    assert response.status_code == 400
    assert response.json() == {"scheduled_at": ["Unknown field. A series starts at start_at and repeats by its rule."]}


def test_list_retrieve_and_another_users_series(api, other_user):
    mine = create(api).json()
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.get(f"/api/series/{mine['id']}/").status_code == 404
    assert other.post(f"/api/series/{mine['id']}/pause/").status_code == 404
    listed = api.get("/api/series/").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == mine["id"]
    assert api.get(f"/api/series/{mine['id']}/").json() == listed["results"][0]


def test_patch_changes_the_rule_and_recomputes_the_next(api):
    mine = create(api).json()
    response = api.patch(f"/api/series/{mine['id']}/", {"rule": "FREQ=DAILY;BYHOUR=7;BYMINUTE=0"}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["summary"] == "Every day at 07:00, Asia/Seoul"
    assert Task.objects.filter(series_id=mine["id"], status="reserved").count() == 1
    assert Task.objects.filter(series_id=mine["id"], status="canceled").count() == 1
    empty = api.patch(f"/api/series/{mine['id']}/", {}, format="json")
    assert empty.status_code == 400


def test_actions_pause_resume_skip_end(api):
    mine = create(api).json()
    url = f"/api/series/{mine['id']}/"
    paused = api.post(url + "pause/")
    assert paused.status_code == 200
    assert (paused.json()["status"], paused.json()["next_at"]) == ("paused", None)
    assert paused.json()["detail"] == f"Series #{mine['id']} paused; nothing is sent until you resume it."
    again = api.post(url + "pause/")
    assert again.status_code == 409
    assert again.json() == {
        "detail": f"Series #{mine['id']} is paused and cannot be paused.",
        "code": "series_paused",
    }
    resumed = api.post(url + "resume/").json()
    assert resumed["status"] == "active" and resumed["next_at"] is not None
    skipped = api.post(url + "skip/").json()
    assert skipped["next_at"] > resumed["next_at"]
    ended = api.post(url + "end/").json()
    assert (ended["status"], ended["next_at"]) == ("ended", None)
    assert not Task.objects.filter(series_id=mine["id"], status="reserved").exists()


def test_quota_counts_occurrences(api, settings):
    settings.API_DAILY_SEND_QUOTA = 1
    assert create(api).status_code == 201
    refused = create(api)
    assert refused.status_code == 429 and refused.json()["code"] == "daily_quota_exceeded"


def test_start_in_the_future(api):
    start = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    body = create(api, rule="FREQ=MONTHLY;BYMONTHDAY=-1", start_at=start.isoformat()).json()
    assert Series.objects.get(pk=body["id"]).next_at >= start


def test_text_fields_take_strings_only(api):
    response = create(api, description=0, rule=True)
    assert response.status_code == 400
    assert response.json() == {"description": ["Not a valid string."], "rule": ["Not a valid string."]}
    assert not Series.objects.exists()


def test_list_with_a_blank_page_is_a_documented_400(api):
    response = api.get("/api/series/?page=")
    assert response.status_code == 400
    assert response.json() == {"page": ["This field may not be blank."]}


def test_a_start_with_an_offset_no_zone_has_is_a_start_at_error(api):
    """The check is the reservation's (tasks.validation.ensure_offset_text); its error names the series' field."""
    response = create(api, start_at="2027-01-05T09:00:00+15:00")
    assert response.status_code == 400
    assert "start_at" in response.json() and "scheduled_at" not in response.json()
    assert not Series.objects.exists()
