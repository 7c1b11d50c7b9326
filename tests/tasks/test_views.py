"""The mail form, cancel, reschedule, history and task pages through Django's test client."""

import re
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test import Client
from django.utils import timezone
from rq.registry import ScheduledJobRegistry

from notifications.models import Notification
from tasks import services
from tasks.mail import MailSpec
from tasks.models import Delivery, IdempotencyKey, Task
from tasks.submissions import submission_key
from tests.harness import at_once
from tests.series.test_views import daily

pytestmark = pytest.mark.django_db

SEOUL = "+09:00"


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def local_input(dt):
    """What a person types into the datetime-local picker (the user's zone is Asia/Seoul)."""
    return timezone.localtime(dt, timezone=timezone.get_fixed_timezone(9 * 60)).strftime("%Y-%m-%dT%H:%M")


def form_data(**overrides):
    data = {
        "recipients": "a@example.com\nb@example.com",
        "template": "welcome",
        "ctx_name": "Alice",
        "ctx_site_name": "",
        "description": "June news",
        "context": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def field_errors(html, field):
    block = re.search(rf'<div class="field[^"]*" id="field-{field}">(.*?)</div>', html, re.S)
    assert block, f"no field {field}"
    return re.findall(r"<li>(.*?)</li>", block.group(1))


def reserve(user, minutes=30, description="later"):
    mail = MailSpec(template="welcome", recipients=("a@example.com",), context={})
    return services.reserve_task(
        owner=user, scheduled_at=timezone.now() + timedelta(minutes=minutes), mail=mail, description=description
    )


def test_sign_in_and_sign_out(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice-123"})
    assert (response.status_code, response["Location"]) == (302, "/")
    assert "Sign out" in client.get("/").content.decode()
    assert client.get("/accounts/logout/").status_code == 405, "signing out is a POST"
    response = client.post("/accounts/logout/")
    assert (response.status_code, response["Location"]) == (302, "/accounts/login/")
    assert client.get("/").status_code == 302


def test_sign_in_with_a_wrong_password_says_so(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password." in response.content.decode()


def test_mail_form_needs_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_mail_form_offers_templates_fields_and_a_picker_in_the_users_zone(signed_in):
    html = signed_in.get("/").content.decode()
    assert re.findall(r'<option value="(\w+)"', html) == ["newsletter", "reminder", "welcome"]
    assert 'name="ctx_name"' in html and 'data-templates="reminder welcome"' in html
    picker = re.search(r'<input type="datetime-local"[^>]*>', html).group(0)
    assert 'step="60"' in picker and 'data-time-zone="Asia/Seoul"' in picker
    assert re.search(r'min="\d{4}-\d\d-\d\dT\d\d:\d\d"', picker)
    assert "In your time zone, Asia/Seoul (UTC+09:00)." in html
    assert 'src="/static/js/mail_form.js"' in html and 'href="/static/css/site.css"' in html
    assert 'id="live-panel"' in html and 'src="/static/js/live.js"' in html
    assert "http://" not in html and "https://" not in html, "the page loads nothing from the internet"


def test_static_files_are_served_by_the_project(signed_in):
    for path in ("/static/js/live.js", "/static/js/mail_form.js", "/static/css/site.css"):
        response = signed_in.get(path)
        assert response.status_code == 200, path
        assert b"".join(response.streaming_content)


def test_send_now_queues_the_mail_and_says_so(signed_in, user, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post("/", form_data(), follow=True)
    task = Task.objects.get(owner=user)
    assert (task.status, task.recipients, task.context) == (
        "queued",
        ["a@example.com", "b@example.com"],
        {"name": "Alice"},
    )
    assert response.redirect_chain == [("/", 302)]
    assert f"Mail #{task.pk} is being sent." in response.content.decode()
    assert redis_conn.lrange("rq:queue:default", 0, -1) == [str(task.pk).encode()]
    entry = Notification.objects.get(owner=user, name="task_progress").payload["data"][0]
    assert (entry["task_id"], entry["status"], entry["progress"]) == (task.pk, "queued", 0)


def test_reserve_reads_the_picker_in_the_users_zone(signed_in, user, redis_conn, django_capture_on_commit_callbacks):
    due = (timezone.now() + timedelta(days=2)).replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post("/", form_data(reserve="on", scheduled_at=local_input(due)), follow=True)
    task = Task.objects.get(owner=user)
    assert (task.status, task.reserved_at) == ("reserved", due)
    local = timezone.localtime(due, timezone=timezone.get_fixed_timezone(9 * 60)).strftime("%Y-%m-%d %H:%M")
    assert f"Mail #{task.pk} reserved for {local} (Asia/Seoul)." in response.content.decode()
    assert redis_conn.zscore(ScheduledJobRegistry("high", connection=redis_conn).key, str(task.pk)) is not None


def test_reserve_in_the_past_shows_the_error_next_to_the_field_and_keeps_the_input(signed_in, redis_conn):
    past = timezone.now() - timedelta(minutes=5)
    response = signed_in.post("/", form_data(reserve="on", scheduled_at=local_input(past)))
    html = response.content.decode()
    assert response.status_code == 200
    assert field_errors(html, "scheduled_at") == ["This time has already passed. Choose a time in the future."]
    assert "The mail was not sent. Please correct the marked fields." in html
    assert "a@example.com\nb@example.com</textarea>" in html
    assert 'value="June news"' in html and 'value="Alice"' in html
    assert f'value="{local_input(past)}"' in html
    assert re.search(r'name="reserve"[^>]*checked', html)
    assert Task.objects.count() == 0
    assert redis_conn.keys("rq:*") == []


def test_reserve_sooner_than_the_minimum_lead_is_the_services_error_on_the_field(signed_in, settings):
    settings.RESERVATION_MIN_LEAD = 3600
    soon = timezone.now() + timedelta(minutes=30)
    response = signed_in.post("/", form_data(reserve="on", scheduled_at=local_input(soon)))
    errors = field_errors(response.content.decode(), "scheduled_at")
    assert errors == ["The reservation time must be at least 3600 seconds in the future."]
    assert Task.objects.count() == 0


def test_reserve_without_a_time_asks_for_one(signed_in):
    response = signed_in.post("/", form_data(reserve="on", scheduled_at=""))
    assert field_errors(response.content.decode(), "scheduled_at") == ["Choose when to send the mail."]


def test_a_bad_address_is_shown_next_to_recipients(signed_in):
    response = signed_in.post("/", form_data(recipients="a@example.com, not-an-address"))
    assert field_errors(response.content.decode(), "recipients") == ["“not-an-address” is not a valid e-mail address."]
    assert Task.objects.count() == 0


def test_errors_and_messages_follow_the_users_language(signed_in):
    past = timezone.now() - timedelta(minutes=5)
    response = signed_in.post("/", form_data(reserve="on", scheduled_at=local_input(past)), HTTP_ACCEPT_LANGUAGE="ko")
    html = response.content.decode()
    assert field_errors(html, "scheduled_at") == ["이미 지난 시각입니다. 앞으로의 시각을 고르세요."]
    assert "메일을 보내지 않았습니다. 표시된 칸을 고쳐 주세요." in html
    assert "진행 중인 작업" in html and '<html lang="ko">' in html


def test_language_switch_is_a_post_that_sticks(signed_in):
    response = signed_in.post("/i18n/setlang/", {"language": "ko", "next": "/tasks/"})
    assert (response.status_code, response["Location"]) == (302, "/tasks/")
    assert "기록" in signed_in.get("/tasks/").content.decode()


def test_cancel_and_reschedule_are_post_only_with_csrf(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        task = reserve(user)
    before = task.reserved_at
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get(f"/tasks/{task.pk}/cancel/").status_code == 405
    assert client.post(f"/tasks/{task.pk}/cancel/").status_code == 403
    later = local_input(timezone.now() + timedelta(days=1))
    assert client.get(f"/tasks/{task.pk}/reschedule/").status_code == 405
    assert client.post(f"/tasks/{task.pk}/reschedule/", {"scheduled_at": later}).status_code == 403
    task.refresh_from_db()
    assert (task.status, task.reserved_at) == ("reserved", before)


def test_cancel_from_the_page_cancels_and_goes_back(signed_in, user, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        task = reserve(user)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/tasks/{task.pk}/cancel/", {"next": "/tasks/"}, follow=True)
    assert response.redirect_chain == [("/tasks/", 302)]
    assert f"Mail #{task.pk} canceled; nothing was sent." in response.content.decode()
    task.refresh_from_db()
    assert task.status == "canceled"
    assert redis_conn.zscore(ScheduledJobRegistry("high", connection=redis_conn).key, str(task.pk)) is None


def test_cancel_ignores_an_outside_next_url(signed_in, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        task = reserve(user)
        response = signed_in.post(f"/tasks/{task.pk}/cancel/", {"next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_another_users_task_is_404_and_untouched(signed_in, other_user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        theirs = reserve(other_user)
    assert signed_in.post(f"/tasks/{theirs.pk}/cancel/").status_code == 404
    later = local_input(timezone.now() + timedelta(days=1))
    assert signed_in.post(f"/tasks/{theirs.pk}/reschedule/", {"scheduled_at": later}).status_code == 404
    assert signed_in.get(f"/tasks/{theirs.pk}/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "reserved"


@pytest.mark.parametrize(
    ("method", "page"),
    [
        ("get", "/tasks/"),
        ("get", "/tasks/{task}/"),
        ("get", "/tasks/{task}/edit/"),
        ("get", "/tasks/{task}/deliveries/{delivery}/"),
        ("post", "/tasks/{task}/cancel/"),
        ("post", "/tasks/{task}/reschedule/"),
    ],
)
def test_every_task_page_sends_an_anonymous_visitor_to_sign_in(
    client, user, django_capture_on_commit_callbacks, method, page
):
    with django_capture_on_commit_callbacks(execute=True):
        task = reserve(user)
    delivery = Delivery.objects.create(task=task, address="z@example.com")
    due = task.reserved_at
    url = page.format(task=task.pk, delivery=delivery.pk)
    data = {"scheduled_at": local_input(timezone.now() + timedelta(days=2))} if method == "post" else {}
    response = getattr(client, method)(url, data)
    assert (response.status_code, response["Location"]) == (302, f"/accounts/login/?next={url}")
    task.refresh_from_db()
    assert (task.status, task.reserved_at) == ("reserved", due)


def test_reschedule_moves_the_reservation(signed_in, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        task = reserve(user)
    new = (timezone.now() + timedelta(days=3)).replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/tasks/{task.pk}/reschedule/", {"scheduled_at": local_input(new)}, follow=True)
    task.refresh_from_db()
    assert task.reserved_at == new
    assert f"Mail #{task.pk} moved to" in response.content.decode()


def test_reschedule_to_the_past_is_refused_with_a_message(signed_in, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        task = reserve(user)
    before = task.reserved_at
    past = local_input(timezone.now() - timedelta(hours=1))
    response = signed_in.post(
        f"/tasks/{task.pk}/reschedule/", {"scheduled_at": past, "next": f"/tasks/{task.pk}/"}, follow=True
    )
    assert "This time has already passed. Choose a time in the future." in response.content.decode()
    task.refresh_from_db()
    assert task.reserved_at == before


def make_history(user, count):
    tasks = [
        Task.objects.create(
            owner=user,
            description=f"mail {i}",
            template="welcome",
            recipients=[f"r{j}@example.com" for j in range(8)],
            status="finished",
            progress=100,
        )
        for i in range(count)
    ]
    Delivery.objects.bulk_create(
        Delivery(
            task=t, address=f"r{j}@example.com", message_id=f"<{t.pk}.{j}@x>", status="failed" if j == 0 else "sent"
        )
        for t in tasks
        for j in range(8)
    )
    return tasks


def test_history_is_paginated_and_shows_outcome_per_recipient(signed_in, user):
    tasks = make_history(user, 25)
    first = signed_in.get("/tasks/").content.decode()
    assert first.count('<tr id="task-') == 20
    assert "Page 1 of 2" in first
    assert "8 recipients: <span" in first and "7 sent" in first and "1 failed" in first
    assert "r0@example.com" in first and "and 3 more…" in first
    second = signed_in.get("/tasks/?page=2").content.decode()
    assert second.count('<tr id="task-') == 5
    assert f'id="task-{tasks[0].pk}"' in second


@pytest.mark.parametrize("count", [2, 40])
def test_history_query_count_does_not_grow_with_tasks(signed_in, user, count, django_assert_max_num_queries):
    make_history(user, count)
    signed_in.get("/tasks/")
    with django_assert_max_num_queries(6):  # session, user, count, page, first deliveries, panel
        signed_in.get("/tasks/")


def test_task_page_lists_every_recipient_failures_first(signed_in, user):
    (task,) = make_history(user, 1)
    html = signed_in.get(f"/tasks/{task.pk}/").content.decode()
    rows = re.findall(r"<tr><td>(r\d@example.com)</td>", html)
    assert rows[0] == "r0@example.com" and sorted(rows) == [f"r{j}@example.com" for j in range(8)]


def test_task_and_series_logs_show_their_times_in_the_readers_zone(signed_in, user, client):
    """Stored in UTC; shown, like every other time on the page, in the reader's zone (Asia/Seoul by default)."""
    stored = "2026-12-07T10:50:42+0000 created\n<b>typed</b> by a user, no stamp\n2026-13-40T99:00:00+0000 garbled\n"
    task = Task.objects.create(owner=user, template="welcome", recipients=[], description="x", log=stored)
    page = signed_in.get(f"/tasks/{task.pk}/").content.decode()
    shown = re.search(r'<details class="log">.*?<pre>(.*?)</pre>', page, re.S)[1]
    assert shown == (
        "2026-12-07T19:50:42+0900 created\n&lt;b&gt;typed&lt;/b&gt; by a user, no stamp\n"
        "2026-13-40T99:00:00+0000 garbled\n"
    )
    series = daily(user, timezone.now() + timedelta(hours=1))
    page = signed_in.get(f"/series/{series.pk}/").content.decode()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+0900"
    assert re.search(rf'<pre class="card log">{stamp} created: FREQ=DAILY in Asia/Seoul', page)


def test_panel_on_every_page_shows_reservations_with_countdown_data_and_cancel(
    signed_in, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        task = reserve(user, description="panel me")
    for path in ("/", "/tasks/", f"/tasks/{task.pk}/", "/settings/"):
        html = signed_in.get(path).content.decode()
        entry = re.search(
            rf'<li class="live-entry phase-reserved" data-task-id="{task.pk}"[^>]*>(.*?)</li>', html, re.S
        )
        assert entry, path
        assert f'data-reserved-at="{task.reserved_at.isoformat()}"' in html
        assert f'action="/tasks/{task.pk}/cancel/"' in entry.group(1) and "csrfmiddlewaretoken" in entry.group(1)


# --- once per filled-in form (tasks.submissions) -------------------------------------------------------------


def submission_of(client) -> str:
    """The hidden value naming the empty form the page shows (new on every visit)."""
    found = re.search(r'name="submission" value="([0-9a-f]{32})"', client.get("/").content.decode())
    assert found, "the form carries no submission value"
    return found.group(1)


def test_each_empty_form_names_a_new_submission(signed_in):
    assert submission_of(signed_in) != submission_of(signed_in)


def test_the_same_form_sent_twice_sends_once_and_says_so(signed_in, user, django_capture_on_commit_callbacks):
    """A double click or a browser that resends the POST: the twin creates nothing and names the first send."""
    data = form_data(submission=submission_of(signed_in))
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post("/", data)
        again = signed_in.post("/", data, follow=True)
    task = Task.objects.get(owner=user)
    assert again.redirect_chain == [("/", 302)]
    told = f"This form was already sent; nothing more was sent. Mail #{task.pk} is being sent."
    assert told in again.content.decode()


def test_the_form_changed_after_going_back_is_a_new_send(signed_in, user, django_capture_on_commit_callbacks):
    submission = submission_of(signed_in)
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post("/", form_data(submission=submission))
        signed_in.post("/", form_data(submission=submission, description="July news"))
    assert sorted(Task.objects.filter(owner=user).values_list("description", flat=True)) == ["July news", "June news"]


def test_a_form_refused_and_corrected_keeps_its_submission_and_sends_once(signed_in, user):
    submission = submission_of(signed_in)
    refused = signed_in.post("/", form_data(submission=submission, recipients="not-an-address"))
    assert f'name="submission" value="{submission}"' in refused.content.decode()
    signed_in.post("/", form_data(submission=submission))
    signed_in.post("/", form_data(submission=submission))
    assert Task.objects.filter(owner=user).count() == 1


def test_the_submission_key_fits_the_idempotency_store():
    """PostgreSQL enforces the columns' lengths (SQLite does not): the key and the fingerprint must fit them."""
    once = submission_key(uuid.uuid4().hex, QueryDict("recipients=a%40example.com&description=" + "x" * 5000))
    assert once is not None
    assert len(once.key) <= IdempotencyKey._meta.get_field("key").max_length
    assert len(once.fingerprint) <= IdempotencyKey._meta.get_field("fingerprint").max_length
    assert submission_key("not-hex", QueryDict("")) is None


def test_twin_posts_at_the_same_moment_send_once(transactional_db, user):
    """Four identical POSTs of one form at once (threads, each its own connection): one task, four redirects."""
    data = form_data(submission=uuid.uuid4().hex)
    statuses = []

    def post() -> None:
        client = Client()
        client.force_login(user)
        statuses.append(client.post("/", data).status_code)

    assert at_once(4, post, after=lambda: connection.close()) == []
    assert statuses == [302, 302, 302, 302]
    assert Task.objects.filter(owner=user).count() == 1
