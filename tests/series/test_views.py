"""The mail form's Repeat section, the preview endpoint, the series pages and the live panel's label."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from preferences.services import set_time_zone
from reservemail.zones import zone_names
from series import services
from series.models import Series
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.services import reschedule_task

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


def test_preview_of_a_rule_it_cannot_say_in_words_shows_the_rule(signed_in):
    before = timezone.localtime()
    query = {"repeat-kind": "advanced", "repeat-advanced": "FREQ=DAILY;BYDAY=MO,WE"}
    got = signed_in.get("/series/preview/", query).json()
    starts = {f"{at:%Y-%m-%d %H:%M}" for at in (before, timezone.localtime())}  # the start is now
    assert got["ok"] is True and got["rule"] == "FREQ=DAILY;BYDAY=MO,WE"
    assert got["summary"] in {f"Custom rule FREQ=DAILY;BYDAY=MO,WE from {start}, Asia/Seoul" for start in starts}
    assert len(got["upcoming"]) == 5 and {d[12:15] for d in got["upcoming"]} == {"Mon", "Wed"}


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
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, "rule": "FREQ=DAILY;BYSETPOS=2", "zone": "UTC"})
    assert response.context["change_form"].errors["rule"][0].startswith("BYSETPOS is not supported;")
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


# --- the series page's change form: description, rule, zone, start (series.services.change_series) ---

SEOUL = timezone.get_fixed_timezone(9 * 60)


def typed(dt):
    """What a person types into the start's datetime-local picker (the user's zone is Asia/Seoul)."""
    return timezone.localtime(dt, timezone=SEOUL).strftime("%Y-%m-%dT%H:%M")


def daily(user, start, rule="FREQ=DAILY"):
    mail = MailSpec(template="welcome", recipients=("a@example.com",), context={})
    return services.create_series(
        owner=user, mail=mail, description="digest", rule=rule, zone="Asia/Seoul", start_at=start
    )


def shown(page_form):
    """The change form's values as the page sends them back."""
    return {name: page_form[name].value() for name in ("description", "rule", "zone")} | {
        "start_at": page_form["start_at"].value().strftime("%Y-%m-%dT%H:%M")
    }


def state(series):
    """The series row and its reserved occurrence, to check that nothing changed."""
    row = Series.objects.filter(pk=series.pk).values("description", "rule", "zone", "start_at", "next_at", "status")
    waiting = Task.objects.filter(series=series, status="reserved").values_list("pk", "reserved_at", "description")
    return {**row.get(), "waiting": list(waiting)}


def test_series_page_changes_the_description(signed_in, user):
    start = (timezone.now() + timedelta(hours=1)).replace(second=37, microsecond=0)
    series = daily(user, start)
    [old] = Task.objects.filter(series=series, status="reserved")
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    assert data == {"description": "digest", "rule": "FREQ=DAILY", "zone": "Asia/Seoul", "start_at": typed(start)}
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, "description": "morning digest"}, follow=True)
    assert response.redirect_chain == [(f"/series/{series.pk}/", 302)]
    assert [m.message for m in response.context["messages"]] == [f"Series #{series.pk} changed."]
    after = state(series)
    assert after["description"] == "morning digest"
    assert after["start_at"] == start  # untouched, seconds included: only the description was handed on
    [(new_pk, due, description)] = after["waiting"]
    assert (due, description) == (start, "morning digest") and new_pk != old.pk
    assert Task.objects.get(pk=old.pk).status == "canceled"


def test_series_page_offers_the_zones_as_a_list_with_the_series_zone_chosen(signed_in, user):
    """The zone is chosen from the same list as the settings page's, not typed (a typo was a refused change)."""
    start = (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
    series = daily(user, start)
    page = signed_in.get(f"/series/{series.pk}/").content.decode()
    select = re.search(r'<select name="zone"[^>]*>(.*?)</select>', page, re.S)
    assert select is not None, "the zone is a list"
    options = re.findall(r'<option value="([^"]+)"( selected)?>', select.group(1))
    assert [name for name, _ in options] == list(zone_names()) and "Europe/Paris" in zone_names()
    assert [name for name, chosen in options if chosen] == ["Asia/Seoul"]
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, "zone": "Europe/Paris"}, follow=True)
    assert [m.message for m in response.context["messages"]] == [f"Series #{series.pk} changed."]
    assert state(series)["zone"] == "Europe/Paris"


def test_series_page_shows_a_zone_this_machine_no_longer_lists_and_asks_for_another(signed_in, user):
    """A zone a tzdata update dropped is shown as the chosen one, not silently replaced by the list's first."""
    start = (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
    series = daily(user, start)
    Series.objects.filter(pk=series.pk).update(zone="US/Pacific-New")  # a link tzdata 2020b removed
    assert "US/Pacific-New" not in zone_names()
    form = signed_in.get(f"/series/{series.pk}/").context["change_form"]
    assert form.fields["zone"].choices[0] == ("US/Pacific-New", "US/Pacific-New")
    data = shown(form)
    assert data["zone"] == "US/Pacific-New"
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, "description": "kept"})
    assert response.context["change_form"].errors == {"zone": ["Unknown time zone “US/Pacific-New”."]}
    assert state(series)["description"] == "digest"
    response = signed_in.post(
        f"/series/{series.pk}/change/", {**data, "description": "kept", "zone": "America/Los_Angeles"}, follow=True
    )
    assert [m.message for m in response.context["messages"]] == [f"Series #{series.pk} changed."]
    assert (state(series)["description"], state(series)["zone"]) == ("kept", "America/Los_Angeles")


def test_series_page_changes_the_start_and_the_next_occurrence_moves(signed_in, user):
    start = (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
    series = daily(user, start)
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    later = start + timedelta(days=3, hours=2, minutes=15)
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, "start_at": typed(later)}, follow=True)
    assert [m.message for m in response.context["messages"]] == [f"Series #{series.pk} changed."]
    after = state(series)
    assert (after["start_at"], after["next_at"], after["description"]) == (later, later, "digest")
    [(_pk, due, _description)] = after["waiting"]
    assert due == later
    line = f"changed: FREQ=DAILY in Asia/Seoul from {timezone.localtime(later, SEOUL).isoformat(timespec='seconds')}"
    assert line in Series.objects.get(pk=series.pk).log


def test_series_page_start_in_the_past_counts_from_there_and_may_end_the_series(signed_in, user):
    start = (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
    series = daily(user, start, rule="FREQ=DAILY;COUNT=3")
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    past = start - timedelta(days=10)  # its three occurrences are all behind: the service ends the series
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, "start_at": typed(past)}, follow=True)
    assert [m.message for m in response.context["messages"]] == [
        f"Series #{series.pk} changed; its rule has no more occurrences, so it ended."
    ]
    after = state(series)
    assert (after["status"], after["start_at"], after["next_at"], after["waiting"]) == ("ended", past, None, [])


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"start_at": "soon"}, "start_at", "Enter a valid date/time."),
        ({"start_at": ""}, "start_at", "This field is required."),
        ({"description": "  "}, "description", "This field is required."),
        ({"rule": "FREQ=SECONDLY"}, "rule", "FREQ must be one of MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY."),
        ({"zone": "Mars/Olympus"}, "zone", None),
        # the server's own zone and tzdata's placeholder name no place: not on the list
        ({"zone": "localtime"}, "zone", "Select a valid choice. localtime is not one of the available choices."),
        ({"zone": "Factory"}, "zone", "Select a valid choice. Factory is not one of the available choices."),
        ({"rule": "FREQ=DAILY;BYHOUR=25"}, "rule", "BYHOUR value 25 is out of range."),
        ({"rule": "FREQ=DAILY;UNTIL=20270231"}, "rule", "UNTIL is not a real date."),
        (
            {"start_at": "2099-01-01T00:00"},
            "start_at",
            "The first occurrence (2099-01-01 00:00 Asia/Seoul) must be within 365 days from now.",
        ),
    ],
)
def test_series_page_bad_input_is_a_form_error_and_changes_nothing(signed_in, user, change, field, message):
    start = (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
    series = daily(user, start)
    before = state(series)
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, **change})
    assert response.status_code == 200
    errors = response.context["change_form"].errors
    assert list(errors) == [field] and (message is None or errors[field] == [message])
    assert f'id="field-{field}"' in response.content.decode() and "has-error" in response.content.decode()
    assert [m.message for m in response.context["messages"]] == [
        "The series was not changed. Please correct the marked fields."
    ]
    assert state(series) == before


def test_series_page_start_that_does_not_exist_in_the_users_zone_is_refused(signed_in, user):
    set_time_zone(user=user, time_zone="America/New_York")
    series = daily(user, (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0))
    before = state(series)
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, "start_at": "2030-03-10T02:30"})
    assert response.context["change_form"].errors["start_at"] == [
        "2030-03-10 02:30 does not exist in America/New_York: the clocks skip it when daylight saving time starts. "
        "Choose another time."
    ]
    assert state(series) == before


def test_series_page_change_refused_by_the_service_rolls_everything_back(signed_in, user, settings):
    series = daily(user, (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0))
    before = state(series)
    settings.API_DAILY_SEND_QUOTA = 1  # the first occurrence used it: the changed one cannot be reserved
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    later = timezone.now() + timedelta(days=2)
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, "start_at": typed(later), "description": "x"})
    form = response.context["change_form"]
    [message] = [m.message for m in response.context["messages"]]
    assert message.startswith("Daily send limit reached") and not form.errors  # no field to mark: said on top
    assert form["description"].value() == "x"  # what was typed is kept
    assert state(series) == before  # the waiting occurrence was canceled inside the rolled-back transaction
    assert Task.objects.filter(series=series).count() == 1


def test_series_page_change_of_a_series_ended_meanwhile_says_so(signed_in, user):
    series = daily(user, (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0))
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    signed_in.post(f"/series/{series.pk}/end/", follow=True)  # in another tab
    before = state(series)
    response = signed_in.post(f"/series/{series.pk}/change/", {**data, "description": "x"})
    assert response.status_code == 200
    assert [m.message for m in response.context["messages"]] == [f"Series #{series.pk} is ended and cannot be changed."]
    page = response.content.decode()
    assert response.context["series"].status == "ended" and "Change the series" not in page
    assert state(series) == before


def test_series_page_without_changes_changes_nothing(signed_in, user):
    series = daily(user, (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0))
    before = state(series)
    data = shown(signed_in.get(f"/series/{series.pk}/").context["change_form"])
    response = signed_in.post(f"/series/{series.pk}/change/", data, follow=True)
    assert [m.message for m in response.context["messages"]] == ["Nothing was changed."]
    assert state(series) == before


def test_another_users_series_cannot_be_changed(signed_in, user, other_user):
    theirs = daily(other_user, (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0))
    before = state(theirs)
    assert signed_in.get(f"/series/{theirs.pk}/").status_code == 404
    response = signed_in.post(
        f"/series/{theirs.pk}/change/",
        {"description": "mine", "rule": "FREQ=WEEKLY", "zone": "UTC", "start_at": "2030-01-01T09:00"},
    )
    assert response.status_code == 404
    assert state(theirs) == before


def test_series_pages_show_an_occurrence_moved_on_its_own_as_the_next_send(signed_in, user):
    start = (timezone.now() + timedelta(hours=1)).replace(second=0, microsecond=0)
    series = daily(user, start)
    [occurrence] = Task.objects.filter(series=series, status="reserved")
    moved = start + timedelta(hours=5, minutes=10)
    reschedule_task(owner=user, task_id=occurrence.pk, scheduled_at=moved)
    for url in ("/series/", f"/series/{series.pk}/"):
        page = signed_in.get(url).content.decode()
        assert timezone.localtime(moved, SEOUL).strftime("%Y-%m-%d %H:%M") in page, url
        assert timezone.localtime(start, SEOUL).strftime("%Y-%m-%d %H:%M") not in page, url
    # next_at stays the rule's slot: the claim counts on from the later of it and the moved time
    assert Series.objects.get(pk=series.pk).next_at == start
