"""The admin's "send or reserve" view with every class of bad input: a form error, and nothing happens."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django.utils.html import escape

from preferences.services import set_time_zone
from tasks.models import Task
from tests.tasks.input_cases import (
    BAD_ADDRESS_IDS,
    BAD_ADDRESSES,
    BAD_CONTEXT_IDS,
    BAD_CONTEXTS,
    BAD_OFFSETS,
    DATE_ONLY,
    DATE_ONLY_MESSAGE,
    DEEP,
    DST_AMBIGUOUS,
    DST_GAP,
    NAMED,
    NAMED_IDS,
    NEW_YORK,
    NON_FINITE,
    assert_nothing_happened,
    deep_json,
    dumps,
    sent_messages,
    with_number,
)

pytestmark = pytest.mark.django_db

ADD = "/admin/tasks/task/add/"


@pytest.fixture
def data(admin_user):
    def build(**change):
        return {
            "owner": admin_user.pk,
            "template": "welcome",
            "recipients": "a@example.com",
            "description": "From the admin",
            "context": '{"name": "B"}',
            "reserve": "",
            "scheduled_at": "",
            **change,
        }

    return build


def submit(client, capture, data):
    with capture() as callbacks:
        response = client.post(ADD, data)
    return response, callbacks


def refused(response, field, piece=None):
    assert response.status_code == 200, "the form is shown again"
    errors = response.context["form"].errors
    assert field in errors, errors
    if piece is not None:
        assert piece in " ".join(errors[field]), errors


@pytest.mark.parametrize(("recipient", "piece"), BAD_ADDRESSES, ids=BAD_ADDRESS_IDS)
def test_bad_address_is_a_form_error(
    admin_client, data, redis_conn, django_capture_on_commit_callbacks, recipient, piece
):
    response, callbacks = submit(admin_client, django_capture_on_commit_callbacks, data(recipients=recipient))
    refused(response, "recipients", piece)
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize(("context", "piece"), BAD_CONTEXTS, ids=BAD_CONTEXT_IDS)
def test_bad_context_is_a_form_error(
    admin_client, data, redis_conn, django_capture_on_commit_callbacks, context, piece
):
    response, callbacks = submit(admin_client, django_capture_on_commit_callbacks, data(context=dumps(context)))
    refused(response, "context", piece)
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize("number", NON_FINITE)
def test_non_finite_numbers_are_a_form_error(
    admin_client, data, redis_conn, django_capture_on_commit_callbacks, number
):
    response, callbacks = submit(
        admin_client, django_capture_on_commit_callbacks, data(context=with_number("n", number))
    )
    refused(response, "context", "not finite")
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize("depth", DEEP)
def test_deeply_nested_context_is_a_form_error(
    admin_client, data, redis_conn, django_capture_on_commit_callbacks, depth
):
    response, callbacks = submit(admin_client, django_capture_on_commit_callbacks, data(context=deep_json(depth)))
    refused(response, "context", "nest")
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize(
    ("when", "piece"),
    [
        (DST_GAP, "does not exist in America/New_York"),
        (DST_AMBIGUOUS, "happens twice in America/New_York"),
        *[(when, "Enter a valid date/time.") for when in BAD_OFFSETS],
        *[(when, DATE_ONLY_MESSAGE) for when in DATE_ONLY],
    ],
    ids=["dst-gap", "dst-ambiguous", *[f"offset-{w[-6:]}" for w in BAD_OFFSETS], *[f"date-{w}" for w in DATE_ONLY]],
)
def test_impossible_times_are_a_form_error(
    admin_client, admin_user, data, redis_conn, django_capture_on_commit_callbacks, when, piece
):
    set_time_zone(user=admin_user, time_zone=NEW_YORK)
    response, callbacks = submit(
        admin_client, django_capture_on_commit_callbacks, data(reserve="on", scheduled_at=when)
    )
    refused(response, "scheduled_at", piece)
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize(("typed", "stored", "to"), NAMED, ids=NAMED_IDS)
def test_named_recipient_is_kept_and_encoded_in_to(
    admin_client, data, django_capture_on_commit_callbacks, typed, stored, to
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(ADD, data(recipients=f"{typed}; c@example.com"))
    assert response.status_code == 302, response.context["form"].errors
    task = Task.objects.get()
    assert task.recipients == [stored, "c@example.com"]
    assert [m["To"] for m in sent_messages()] == [to, "c@example.com"]
    page = admin_client.get(f"/admin/tasks/task/{task.pk}/change/")
    assert page.status_code == 200
    assert escape(typed) in page.content.decode()


def test_reserve_with_a_named_recipient(admin_client, data, django_capture_on_commit_callbacks):
    local = timezone.localtime(timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            ADD, data(recipients='"Name, Jr." <a@example.com>', reserve="on", scheduled_at=local)
        )
    assert response.status_code == 302
    assert Task.objects.get().recipients == [{"address": "a@example.com", "name": "Name, Jr."}]


def test_plain_text_parts_are_not_html_escaped(admin_client, data, django_capture_on_commit_callbacks):
    context = dumps({"name": "Tom & Jerry", "site_name": "Tom & Jerry <co>"})
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_client.post(ADD, data(context=context)).status_code == 302
    sent_messages()
    [message] = mail.outbox
    assert message.subject == "Welcome to Tom & Jerry <co>, Tom & Jerry"
    assert "Hello Tom & Jerry," in message.body
    assert "Hello Tom &amp; Jerry," in message.alternatives[0].content
