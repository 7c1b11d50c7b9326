"""The mail form's Repeat section, the preview endpoint, the series pages and the live panel's label."""

from datetime import timedelta

import pytest
from django.utils import timezone

from series import services
from series.models import Series
from tasks.mail import MailSpec
from tasks.models import Task

pytestmark = pytest.mark.django_db

MAIL = {"recipients": "a@example.com", "template": "welcome", "description": "weekly", "reserve": ""}


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def test_mail_form_shows_the_repeat_section(signed_in):
    html = signed_in.get("/").content.decode()
    assert 'id="repeat-fields"' in html and 'name="repeat-kind"' in html
    assert "/static/js/series_repeat.js" in html and "<script>" not in html


def test_mail_form_with_repeat_weekly_creates_a_series(signed_in, user):
    response = signed_in.post(
        "/",
        {**MAIL, "repeat-kind": "weekly", "repeat-weekdays": ["MO", "TH"], "repeat-at_time": "09:00",
         "repeat-ends": "after", "repeat-count": "10"},
    )  # fmt: skip
    series = Series.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/series/{series.pk}/"
    assert series.rule == "FREQ=WEEKLY;BYDAY=MO,TH;BYHOUR=9;BYMINUTE=0;COUNT=10"
    assert series.zone == "Asia/Seoul" and series.owner == user
    assert Task.objects.filter(series=series, status="reserved").count() == 1
    page = signed_in.get(response["Location"]).content.decode()
    assert "Every Monday and Thursday at 09:00, Asia/Seoul, 10 times" in page


def test_mail_form_without_repeat_sends_as_before(signed_in):
    signed_in.post("/", {**MAIL, "repeat-kind": "none"})
    assert not Series.objects.exists() and Task.objects.get().status == "queued"


def test_mail_form_refuses_weekly_without_days(signed_in):
    response = signed_in.post("/", {**MAIL, "repeat-kind": "weekly"})
    assert response.status_code == 200
    assert "Choose at least one day of the week." in response.content.decode()
    assert not Series.objects.exists() and not Task.objects.exists()


def test_preview_returns_summary_and_five_dates(signed_in):
    got = signed_in.get(
        "/series/preview/", {"repeat-kind": "monthly", "repeat-monthday": "-1", "repeat-at_time": "18:30"}
    ).json()
    assert got["ok"] is True and got["rule"] == "FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=18;BYMINUTE=30"
    assert got["summary"] == "Every month on the last day at 18:30, Asia/Seoul"
    assert len(got["upcoming"]) == 5 and all(d.endswith("18:30") for d in got["upcoming"])
    bad = signed_in.get("/series/preview/", {"repeat-kind": "advanced", "repeat-advanced": "FREQ=SECONDLY"}).json()
    assert bad == {"ok": False, "error": "FREQ must be one of MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY."}


def test_series_pages_and_controls(signed_in, user, other_user, client):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    series = services.create_series(
        owner=user,
        mail=MailSpec(template="welcome", recipients=("a@example.com",), context={}),
        description="digest",
        rule="FREQ=DAILY",
        zone="Asia/Seoul",
        start_at=start,
    )
    assert "digest" in signed_in.get("/series/").content.decode()
    page = signed_in.get(f"/series/{series.pk}/").content.decode()
    assert "Every day at" in page and "Pause" in page
    [occurrence] = Task.objects.filter(series=series)
    assert (
        f'<a href="/series/{series.pk}/">#{series.pk}</a>' in signed_in.get(f"/tasks/{occurrence.pk}/").content.decode()
    )
    response = signed_in.post(f"/series/{series.pk}/pause/", follow=True)
    assert f"Series #{series.pk} paused; nothing is sent until you resume it." in response.content.decode()
    assert Series.objects.get(pk=series.pk).status == "paused"
    response = signed_in.post(f"/series/{series.pk}/change/", {"rule": "FREQ=DAILY;BYSETPOS=2", "zone": "UTC"})
    assert Series.objects.get(pk=series.pk).rule == "FREQ=DAILY"
    signed_in.post(f"/series/{series.pk}/resume/")
    assert Series.objects.get(pk=series.pk).status == "active"
    client.force_login(other_user)
    assert client.get(f"/series/{series.pk}/").status_code == 404
    assert client.post(f"/series/{series.pk}/end/").status_code == 404


def test_live_panel_labels_an_occurrence(signed_in, user):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    services.create_series(
        owner=user,
        mail=MailSpec(template="welcome", recipients=("a@example.com",), context={}),
        description="weekly report",
        rule="FREQ=WEEKLY",
        zone="Asia/Seoul",
        start_at=start,
    )
    html = signed_in.get("/tasks/").content.decode()
    assert '<span class="entry-repeats">repeats weekly</span>' in html
    polled = signed_in.get("/notifications/").json()
    [reserve] = [item for item in polled if item["name"] == "task_reserve"]
    assert [entry["repeats"] for entry in reserve["data"]] == ["weekly"]
