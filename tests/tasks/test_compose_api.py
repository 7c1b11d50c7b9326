"""POST /api/tasks/preview/ and /api/tasks/test/, and object recipients on create: what each answers,
that a preview creates and sends nothing, that a test goes only to the requester, through a real worker."""

from datetime import timedelta
from email.header import decode_header, make_header
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from subscriptions.models import Suppression
from subscriptions.tokens import sample_links, unsubscribe_links
from tasks.models import Delivery, Task
from tests.harness import wait_until
from tests.tasks.test_api import body_of, client_for

pytestmark = pytest.mark.django_db

KIM = {"address": "kim@example.com", "name": "김민준", "context": {"name": "민준", "message": "See you Monday."}}
BODY = {
    "template": "welcome",
    "recipients": [KIM, "Lee <lee@example.com>"],
    "context": {"site_name": "Hanbit", "name": "friend"},
    "description": "Spring class",
}
KIM_TEXT = "Hello 민준,\n\nWelcome to Hanbit. See you Monday.\n\n-- \nHanbit\n"
WELCOME_HTML = (
    "<!doctype html>\n<html><body>\n<p>Hello {name},</p>\n<p>Welcome to Hanbit. {message}</p>\n</body></html>\n"
)


def header(message, name):
    return str(make_header(decode_header(message[name])))


def text_of(message):
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    return part.get_payload(decode=True).decode(part.get_content_charset()).replace("\r\n", "\n")


def assert_nothing_created(redis_conn):
    assert (Task.objects.count(), Delivery.objects.count()) == (0, 0)
    assert redis_conn.keys("rq:job:*") == [] and redis_conn.keys("rq:queue:*") == []


@pytest.fixture
def api(user):
    return client_for(user)


def test_preview_renders_the_first_recipients_copy_and_creates_nothing(api, redis_conn, smtp):
    response = api.post("/api/tasks/preview/", BODY, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "recipient": "김민준 <kim@example.com>",
        "subject": "Welcome to Hanbit, 민준",
        "text": KIM_TEXT,
        "html": WELCOME_HTML.format(name="민준", message="See you Monday."),
    }
    assert_nothing_created(redis_conn)
    assert smtp.received == []


def test_preview_of_a_chosen_recipient_uses_the_shared_context(api, redis_conn):
    response = api.post("/api/tasks/preview/", {**BODY, "recipient": "LEE@example.com"}, format="json")
    assert response.status_code == 200
    assert response.json()["recipient"] == "Lee <lee@example.com>"
    assert response.json()["subject"] == "Welcome to Hanbit, friend"
    assert response.json()["html"] == WELCOME_HTML.format(name="friend", message="We are glad you are here.")
    assert_nothing_created(redis_conn)


def test_preview_of_a_bulk_template_shows_a_sample_link_that_unsubscribes_nobody(api, client, redis_conn):
    """The recipient's link is the recipient's credential: whoever previews a copy for an address gets a sample."""
    body = {"template": "newsletter", "recipients": ["r@example.com"], "context": {"title": "June", "body": "News"}}
    response = api.post("/api/tasks/preview/", {**body, "description": "x"}, format="json")
    link = sample_links().url
    real = unsubscribe_links(address="r@example.com", list_name="newsletter").url
    assert real.rsplit("/u/", 1)[1] not in response.content.decode()
    body = response.json()
    assert (body["recipient"], body["subject"]) == ("r@example.com", "June")
    assert (
        body["text"] == f"June\n\nNews\n\nYou receive this because r@example.com is subscribed.\nUnsubscribe: {link}\n"
    )
    assert f'<a href="{link}">Unsubscribe</a>' in body["html"]
    assert_nothing_created(redis_conn)
    one_click = client.post(urlsplit(link).path, {"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 400
    assert not Suppression.objects.exists()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"recipient": "nobody@example.com"}, {"recipient": ["“nobody@example.com” is not one of the recipients."]}),
        ({"recipients": ["bad"]}, {"recipients": {"0": ["“bad” is not a valid e-mail address."]}}),
        ({"context": {"site_name": "x" * 300}}, {"context": None}),
        ({"template": "nope"}, {"template": ['"nope" is not a valid choice.']}),
    ],
)
def test_preview_refuses_what_a_create_refuses(api, redis_conn, change, expected):
    response = api.post("/api/tasks/preview/", {**BODY, **change}, format="json")
    assert response.status_code == 400
    for field, messages in expected.items():
        assert field in response.json()
        if messages is not None:
            assert response.json()[field] == messages
    assert_nothing_created(redis_conn)


def test_object_recipient_errors_are_keyed_by_index(api, redis_conn):
    recipients = [
        "ok@example.com",
        {"address": "a@example.com", "extra": 1},
        {"address": "not-an-address"},
        {"address": "b@example.com", "context": []},
        {"address": "c@example.com", "name": "C\nD"},
        7,
    ]
    response = api.post("/api/tasks/", {**BODY, "recipients": recipients}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "recipients": {
            "1": ["Unknown key(s) in a recipient: extra. Allowed: address, name, context."],
            "3": ["“context” must be a JSON object."],
            "5": ['A recipient is a string or an object {"address": …, "name": …, "context": {…}}.'],
        }
    }
    response = api.post("/api/tasks/", {**BODY, "recipients": recipients[2:3] + recipients[4:5]}, format="json")
    assert response.json() == {
        "recipients": {
            "0": ["“not-an-address” is not a valid e-mail address."],
            "1": ["The name “C\\u000aD” contains a control character (U+000A)."],
        }
    }
    assert_nothing_created(redis_conn)


def test_object_recipients_are_stored_and_listed_as_they_were_given(api, user, django_capture_on_commit_callbacks):
    """One with its own data comes back as the object, one without as its label: either can be sent back as it is."""
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/tasks/", BODY, format="json")
    assert response.status_code == 201
    task = Task.objects.get()
    assert task.recipients == [KIM, {"address": "lee@example.com", "name": "Lee"}]
    assert response.json() == body_of(task, recipients=[KIM, "Lee <lee@example.com>"])
    assert response.json()["is_test"] is False


def test_a_reservations_recipients_read_and_sent_back_keep_their_own_data(
    api, user, redis_conn, django_capture_on_commit_callbacks
):
    """GET then PATCH the same recipients (what a generated client does): nothing a recipient carries is lost."""
    due = (timezone.now() + timedelta(hours=2)).isoformat()
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/tasks/", {**BODY, "scheduled_at": due}, format="json")
    task_id = created.json()["id"]
    shown = api.get(f"/api/tasks/{task_id}/").json()["recipients"]
    with django_capture_on_commit_callbacks(execute=True):
        patched = api.patch(f"/api/tasks/{task_id}/", {"recipients": shown}, format="json")
    assert patched.status_code == 200, patched.json()
    assert Task.objects.get(pk=task_id).recipients == [KIM, {"address": "lee@example.com", "name": "Lee"}]


def test_test_send_without_an_address_on_the_account_is_refused(other_user, redis_conn):
    response = client_for(other_user).post("/api/tasks/test/", BODY, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Your account has no e-mail address, so a test cannot be sent to you. Add one to your account first.",
        "code": "no_email",
    }
    assert_nothing_created(redis_conn)


def test_test_send_counts_against_the_daily_quota(api, user, settings, django_capture_on_commit_callbacks):
    settings.API_DAILY_SEND_QUOTA = 1
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/tasks/test/", BODY, format="json").status_code == 201
    response = api.post("/api/tasks/test/", BODY, format="json")
    assert (response.status_code, response.json()["code"]) == (429, "daily_quota_exceeded")
    assert Task.objects.count() == 1


@pytest.mark.e2e
def test_object_recipients_and_a_test_send_are_delivered_by_a_real_worker(transactional_db, user, worker, smtp):
    api = client_for(user)
    created = api.post("/api/tasks/", BODY, format="json")
    assert created.status_code == 201, created.json()
    tested = api.post("/api/tasks/test/", {**BODY, "recipient": "kim@example.com"}, format="json")
    assert tested.status_code == 201, tested.json()
    test_task = Task.objects.get(pk=tested.json()["id"])
    alice = {"address": "alice@example.com", "name": "김민준", "context": KIM["context"]}
    assert tested.json() == body_of(test_task, recipients=[alice])
    assert (test_task.is_test, test_task.status in ("queued", "running", "finished")) == (True, True)
    assert test_task.description == "Spring class"  # the body's; without one, "Test of welcome"
    for task_id in (created.json()["id"], test_task.pk):
        wait_until(
            lambda task_id=task_id: api.get(f"/api/tasks/{task_id}/").json()["status"] == "finished",
            timeout=30,
            what="the task to finish",
        )
    wait_until(lambda: len(smtp.received) == 3, timeout=5, what="three messages at the sink")
    by_rcpt = {r.rcpt_tos[0]: r.message for r in smtp.received}
    assert sorted(by_rcpt) == ["alice@example.com", "kim@example.com", "lee@example.com"]
    assert header(by_rcpt["kim@example.com"], "To") == "김민준 <kim@example.com>"
    assert header(by_rcpt["kim@example.com"], "Subject") == "Welcome to Hanbit, 민준"
    assert text_of(by_rcpt["kim@example.com"]) == KIM_TEXT
    assert header(by_rcpt["lee@example.com"], "Subject") == "Welcome to Hanbit, friend"
    # The test: only to the requester, Kim's data, the marker before the subject.
    assert header(by_rcpt["alice@example.com"], "To") == "김민준 <alice@example.com>"
    assert header(by_rcpt["alice@example.com"], "Subject") == "[TEST] Welcome to Hanbit, 민준"
    assert text_of(by_rcpt["alice@example.com"]) == KIM_TEXT
    detail = api.get(f"/api/tasks/{created.json()['id']}/").json()
    assert [(d["address"], d["name"], d["context"]) for d in detail["deliveries"]] == [
        ("kim@example.com", "김민준", KIM["context"]),
        ("lee@example.com", "Lee", {}),
    ]


@pytest.mark.e2e
def test_a_retried_recipient_gets_the_data_it_was_first_rendered_with(transactional_db, user, worker, smtp):
    smtp.handler.fail_for["kim@example.com"] = ["451 4.3.0 mailbox busy"]  # the first attempt fails
    api = client_for(user)
    created = api.post("/api/tasks/", BODY, format="json")
    assert created.status_code == 201
    task_id = created.json()["id"]
    done = wait_until(
        lambda: (body := api.get(f"/api/tasks/{task_id}/").json())["status"] == "finished" and body,
        timeout=30,
        what="the task to finish after its retry",
    )
    assert "451 4.3.0 mailbox busy" in done["log"] and done["attempts"] >= 2
    (kim,) = smtp.to("kim@example.com")
    assert header(kim.message, "Subject") == "Welcome to Hanbit, 민준"
    assert text_of(kim.message) == KIM_TEXT
    assert Delivery.objects.get(address="kim@example.com").context == KIM["context"]


@pytest.mark.parametrize("path", ["/api/tasks/preview/", "/api/tasks/test/"])
@pytest.mark.parametrize("field", ["description", "recipient"])
def test_numbers_are_not_text(api, redis_conn, path, field):
    response = api.post(path, {**BODY, field: 0}, format="json")
    assert (response.status_code, response.json()) == (400, {field: ["Not a valid string."]})
    assert_nothing_created(redis_conn)
