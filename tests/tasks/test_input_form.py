"""The mail form (/) with every class of bad input: a field error, and nothing created, queued or sent."""

import pytest
from django.core import mail
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


def form_data(**overrides):
    data = {
        "recipients": "a@example.com",
        "template": "welcome",
        "ctx_name": "",
        "ctx_site_name": "",
        "description": "From the form",
        "context": "",
    }
    data.update(overrides)
    return data


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def submit(client, capture, data):
    with capture() as callbacks:
        response = client.post("/", data)
    return response, callbacks


def refused(response, field, piece=None):
    assert response.status_code == 200, "the form is shown again"
    errors = response.context["form"].errors
    assert field in errors, errors
    if piece is not None:
        assert piece in " ".join(errors[field]), errors
    assert "The mail was not sent." in response.content.decode()


@pytest.mark.parametrize(("recipient", "piece"), BAD_ADDRESSES, ids=BAD_ADDRESS_IDS)
def test_bad_address_is_a_field_error_and_nothing_happens(
    signed_in, redis_conn, django_capture_on_commit_callbacks, recipient, piece
):
    data = form_data(recipients=f"good@example.com\n{recipient}")
    response, callbacks = submit(signed_in, django_capture_on_commit_callbacks, data)
    refused(response, "recipients", piece)
    assert_nothing_happened(redis_conn, callbacks)


def test_a_newline_inside_a_quoted_local_part_is_not_a_separator(
    signed_in, redis_conn, django_capture_on_commit_callbacks
):
    response, callbacks = submit(
        signed_in, django_capture_on_commit_callbacks, form_data(recipients='"r\nx"@example.com')
    )
    refused(response, "recipients", "control character (U+000A)")
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize(("context", "piece"), BAD_CONTEXTS, ids=BAD_CONTEXT_IDS)
def test_bad_context_is_a_field_error_and_nothing_happens(
    signed_in, redis_conn, django_capture_on_commit_callbacks, context, piece
):
    response, callbacks = submit(signed_in, django_capture_on_commit_callbacks, form_data(context=dumps(context)))
    refused(response, "context", piece)
    assert_nothing_happened(redis_conn, callbacks)


def test_long_subject_value_typed_in_its_field_is_refused(signed_in, redis_conn, django_capture_on_commit_callbacks):
    data = form_data(ctx_site_name="x" * 1200)
    response, callbacks = submit(signed_in, django_capture_on_commit_callbacks, data)
    refused(response, "context", "at most 250 are allowed")
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize("number", NON_FINITE)
def test_non_finite_numbers_are_a_field_error(signed_in, redis_conn, django_capture_on_commit_callbacks, number):
    data = form_data(context=with_number("n", number))
    response, callbacks = submit(signed_in, django_capture_on_commit_callbacks, data)
    refused(response, "context", "not finite")
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize("depth", DEEP)
def test_deeply_nested_context_is_a_field_error_never_500(
    signed_in, redis_conn, django_capture_on_commit_callbacks, depth
):
    response, callbacks = submit(signed_in, django_capture_on_commit_callbacks, form_data(context=deep_json(depth)))
    refused(response, "context", "nest")
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize(
    "text", ['{"a": 1', "[1, 2]", '"text"', "1" * 5000], ids=["broken", "list", "string", "huge-int"]
)
def test_context_that_is_not_an_object_is_a_field_error(
    signed_in, redis_conn, django_capture_on_commit_callbacks, text
):
    response, callbacks = submit(signed_in, django_capture_on_commit_callbacks, form_data(context=text))
    refused(response, "context", "Enter a JSON object")
    assert_nothing_happened(redis_conn, callbacks)


@pytest.fixture
def new_yorker(signed_in, user):
    set_time_zone(user=user, time_zone=NEW_YORK)
    return signed_in


@pytest.mark.parametrize(
    ("when", "piece"),
    [
        (DST_GAP, "2027-03-14 02:30 does not exist in America/New_York"),
        (DST_AMBIGUOUS, "2027-11-07 01:30 happens twice in America/New_York"),
        *[(when, "Enter a valid date/time.") for when in BAD_OFFSETS],  # the picker has no offset to give
        *[(when, DATE_ONLY_MESSAGE) for when in DATE_ONLY],
    ],
    ids=["dst-gap", "dst-ambiguous", *[f"offset-{w[-6:]}" for w in BAD_OFFSETS], *[f"date-{w}" for w in DATE_ONLY]],
)
def test_impossible_times_are_a_field_error(new_yorker, redis_conn, django_capture_on_commit_callbacks, when, piece):
    data = form_data(reserve="on", scheduled_at=when)
    response, callbacks = submit(new_yorker, django_capture_on_commit_callbacks, data)
    refused(response, "scheduled_at", piece)
    assert_nothing_happened(redis_conn, callbacks)


def test_fields_the_form_does_not_have_change_nothing(signed_in, user, django_capture_on_commit_callbacks):
    """A form has no "unknown field" answer: extra POST names are ignored, so they cannot pick the owner or status."""
    data = form_data(status="finished", owner="999", queue="high", reserved_at="2027-01-10T10:00")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post("/", data)
    assert response.status_code == 302
    task = Task.objects.get()
    assert (task.owner, task.status, task.queue, task.reserved_at) == (user, "queued", "default", None)


# --- what must get through --------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "stored", "to"), NAMED, ids=NAMED_IDS)
def test_named_recipient_is_kept_and_encoded_in_to(signed_in, django_capture_on_commit_callbacks, typed, stored, to):
    data = form_data(recipients=f"{typed}, c@example.com\nd@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post("/", data)
    assert response.status_code == 302, response.context["form"].errors
    task = Task.objects.get()
    assert task.recipients == [stored, "c@example.com", "d@example.com"]
    for page in ("/tasks/", f"/tasks/{task.pk}/"):  # before sending, the pages list the recipients as typed
        assert escape(typed) in signed_in.get(page).content.decode()
    assert [m["To"] for m in sent_messages()] == [to, "c@example.com", "d@example.com"]


def test_plain_text_parts_are_not_html_escaped(signed_in, django_capture_on_commit_callbacks):
    data = form_data(ctx_name="Tom & Jerry", ctx_site_name="Tom & Jerry <co>")
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_in.post("/", data).status_code == 302
    sent_messages()
    [message] = mail.outbox
    assert message.subject == "Welcome to Tom & Jerry <co>, Tom & Jerry"
    assert "Hello Tom & Jerry," in message.body
    html = message.alternatives[0].content
    assert "Hello Tom &amp; Jerry," in html and "Tom &amp; Jerry &lt;co&gt;" in html
