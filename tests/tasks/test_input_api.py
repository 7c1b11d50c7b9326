"""POST /api/tasks/ with every class of bad input: 400 naming the field, and nothing created, queued or sent."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

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
from tests.tasks.test_api import client_for

pytestmark = pytest.mark.django_db

SEND = {"template": "welcome", "recipients": ["a@example.com"], "context": {"name": "Ann"}, "description": "Hi"}


@pytest.fixture
def api(user):
    return client_for(user)


def post(api, capture, body=None, raw=None):
    """POST a JSON body (or raw JSON text); return the response and the on-commit callbacks captured."""
    with capture() as callbacks:
        if raw is not None:
            response = api.post("/api/tasks/", raw, content_type="application/json")
        else:
            response = api.post("/api/tasks/", body, format="json")
    return response, callbacks


def refused(response, field, piece=None):
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body, body
    if piece is not None:
        assert piece in " ".join(body[field]), body


def refused_at(response, errors):
    """A 400 whose whole body is the recipients' errors, keyed by position: {index: piece of its message}."""
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"recipients"}, body
    assert set(body["recipients"]) == set(errors), body
    for index, piece in errors.items():
        (message,) = body["recipients"][index]
        assert piece in message, body


@pytest.mark.parametrize(("recipient", "piece"), BAD_ADDRESSES, ids=BAD_ADDRESS_IDS)
def test_bad_address_is_400_and_nothing_happens(api, redis_conn, django_capture_on_commit_callbacks, recipient, piece):
    response, callbacks = post(api, django_capture_on_commit_callbacks, {**SEND, "recipients": [recipient]})
    refused_at(response, {"0": piece})
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize(("recipient", "piece"), BAD_ADDRESSES, ids=BAD_ADDRESS_IDS)
def test_bad_address_as_an_object_is_keyed_like_a_string(
    api, redis_conn, django_capture_on_commit_callbacks, recipient, piece
):
    if "<" in recipient:  # "Name <address>" is a string's way of naming; an object names with "name"
        name, address = recipient.rsplit(" <", 1)
        # a trailing control character in a name is whitespace its strip() drops: keep one inside instead
        raw = {"address": address.rstrip(">"), "name": name.replace("\u000b", "\u000bx")}
    else:
        raw = {"address": recipient}
    response, callbacks = post(api, django_capture_on_commit_callbacks, {**SEND, "recipients": ["a@example.com", raw]})
    refused_at(response, {"1": piece})
    assert_nothing_happened(redis_conn, callbacks)


def test_a_bad_address_among_good_ones_refuses_the_whole_send(api, redis_conn, django_capture_on_commit_callbacks):
    body = {**SEND, "recipients": ["a@example.com", '"r\u000bx"@example.com', "b@example.com"]}
    response, callbacks = post(api, django_capture_on_commit_callbacks, body)
    refused_at(response, {"1": "U+000B"})
    assert_nothing_happened(redis_conn, callbacks)


def test_every_bad_recipient_is_named_by_its_position_whatever_its_shape(  # shape errors: test_compose_api
    api, redis_conn, django_capture_on_commit_callbacks
):
    recipients = [
        "a@example.com",
        "a@b",
        {"address": "b@example.com"},
        {"address": "not-an-address", "name": "N"},
        "   ",  # blank: skipped, as the form skips an empty line
        "Bob <bob@example.com>",
        "c@example.com",
        "bj\u00f6rn@example.com",
    ]
    response, callbacks = post(api, django_capture_on_commit_callbacks, {**SEND, "recipients": recipients})
    assert response.status_code == 400
    assert response.json() == {
        "recipients": {
            "1": ["“a@b” is not a valid e-mail address."],
            "3": ["“not-an-address” is not a valid e-mail address."],
            "7": [response.json()["recipients"]["7"][0]],
        }
    }
    assert "SMTPUTF8" in response.json()["recipients"]["7"][0]
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize(
    ("path", "extra"),
    [
        ("/api/tasks/preview/", {}),
        ("/api/tasks/test/", {}),
        ("/api/series/", {"rule": "FREQ=WEEKLY;BYDAY=MO;BYHOUR=9;BYMINUTE=0;COUNT=3"}),
    ],
    ids=["preview", "test", "series"],
)
def test_other_endpoints_key_a_bad_string_recipient_by_position(api, redis_conn, path, extra):
    body = {**SEND, "recipients": ["a@example.com", "a@b"], **extra}
    response = api.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["recipients"] == {"1": ["“a@b” is not a valid e-mail address."]}
    assert Task.objects.count() == 0
    assert not redis_conn.keys("*rq:job*")


def test_patch_keys_a_bad_string_recipient_by_position(api, user, redis_conn, django_capture_on_commit_callbacks):
    due = timezone.now() + timedelta(days=1)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/tasks/", {**SEND, "scheduled_at": due.isoformat()}, format="json")
    assert created.status_code == 201, created.content
    task_id = created.json()["id"]
    response = api.patch(f"/api/tasks/{task_id}/", {"recipients": ["b@example.com", "a@b"]}, format="json")
    assert response.status_code == 400, response.content
    assert response.json() == {"recipients": {"1": ["“a@b” is not a valid e-mail address."]}}
    assert Task.objects.get(pk=task_id).recipients == ["a@example.com"]


@pytest.mark.parametrize(
    ("recipients", "message"),
    [
        ([], "This list may not be empty."),
        (["  ", ""], "Enter at least one recipient."),
    ],
    ids=["empty", "only-blank"],
)
def test_list_level_recipient_errors_stay_a_plain_list(
    api, redis_conn, django_capture_on_commit_callbacks, recipients, message
):
    response, callbacks = post(api, django_capture_on_commit_callbacks, {**SEND, "recipients": recipients})
    assert response.status_code == 400, response.content
    assert response.json()["recipients"] == [message]
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize(("context", "piece"), BAD_CONTEXTS, ids=BAD_CONTEXT_IDS)
def test_bad_context_is_400_and_nothing_happens(api, redis_conn, django_capture_on_commit_callbacks, context, piece):
    response, callbacks = post(api, django_capture_on_commit_callbacks, {**SEND, "context": context})
    refused(response, "context", piece)
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize("number", NON_FINITE)
def test_non_finite_numbers_are_400(api, redis_conn, django_capture_on_commit_callbacks, number):
    raw = dumps({**SEND, "context": 0}).replace('"context": 0', '"context": ' + with_number("n", number))
    response, callbacks = post(api, django_capture_on_commit_callbacks, raw=raw)
    assert response.status_code == 400, response.content
    body = response.json()
    if number in ("NaN", "Infinity", "-Infinity"):  # not JSON: DRF's strict parser refuses the body
        assert body["code"] == "parse_error"
    else:  # JSON numbers that overflow to infinity: the context check refuses them
        assert "not finite" in body["context"][0]
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize("depth", DEEP)
def test_deeply_nested_context_is_400_never_500(api, redis_conn, django_capture_on_commit_callbacks, depth):
    raw = dumps({**SEND, "context": 0}).replace('"context": 0', '"context": ' + deep_json(depth))
    response, callbacks = post(api, django_capture_on_commit_callbacks, raw=raw)
    assert response.status_code == 400, response.content
    body = response.json()
    assert "nest" in (" ".join(body["context"]) if "context" in body else body["detail"]), body
    assert_nothing_happened(redis_conn, callbacks)


def test_deeply_nested_body_anywhere_is_400(api, redis_conn, django_capture_on_commit_callbacks):
    response, callbacks = post(api, django_capture_on_commit_callbacks, raw="[" * 3000 + "]" * 3000)
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")
    assert_nothing_happened(redis_conn, callbacks)


def test_deep_body_with_an_idempotency_key_is_400(api, redis_conn, django_capture_on_commit_callbacks):
    raw = dumps({**SEND, "description": 0}).replace('"description": 0', '"description": ' + deep_json(900))
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.post("/api/tasks/", raw, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k1")
    assert response.status_code == 400
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"status": "finished"}, {"status": ["Unknown field."]}),
        (
            {"status": "x", "owner": 1, "queue": "high"},
            {"owner": ["Unknown field."], "queue": ["Unknown field."], "status": ["Unknown field."]},
        ),
        (
            {"reserved_at": "2027-01-10T10:00+09:00"},
            {"reserved_at": ["Unknown field. To reserve the mail for later, use scheduled_at."]},
        ),
    ],
    ids=["status", "several", "reserved_at"],
)
def test_unknown_fields_are_400_naming_each(api, redis_conn, django_capture_on_commit_callbacks, extra, expected):
    response, callbacks = post(api, django_capture_on_commit_callbacks, {**SEND, **extra})
    assert (response.status_code, response.json()) == (400, expected)
    assert_nothing_happened(redis_conn, callbacks)


@pytest.fixture
def new_yorker(user):
    set_time_zone(user=user, time_zone=NEW_YORK)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("when", "piece"),
    [(DST_GAP, "does not exist in America/New_York"), (DST_AMBIGUOUS, "happens twice in America/New_York")],
    ids=["dst-gap", "dst-ambiguous"],
)
def test_impossible_local_times_are_400(new_yorker, redis_conn, django_capture_on_commit_callbacks, when, piece):
    response, callbacks = post(new_yorker, django_capture_on_commit_callbacks, {**SEND, "scheduled_at": when})
    refused(response, "scheduled_at", piece)
    assert_nothing_happened(redis_conn, callbacks)


def test_the_same_local_times_with_an_offset_are_read_as_given(new_yorker, django_capture_on_commit_callbacks):
    """Not refused for the zone: with an offset the time is exact (then the reservation window decides)."""
    response, _ = post(
        new_yorker, django_capture_on_commit_callbacks, {**SEND, "scheduled_at": DST_AMBIGUOUS + "-05:00"}
    )
    assert "happens twice" not in response.content.decode()


@pytest.mark.parametrize("when", BAD_OFFSETS)
def test_offsets_beyond_14_hours_or_with_60_minutes_are_400(api, redis_conn, django_capture_on_commit_callbacks, when):
    response, callbacks = post(api, django_capture_on_commit_callbacks, {**SEND, "scheduled_at": when})
    refused(response, "scheduled_at", "UTC offset")
    assert_nothing_happened(redis_conn, callbacks)


@pytest.mark.parametrize("when", DATE_ONLY)
def test_a_date_without_a_time_of_day_is_400(api, redis_conn, django_capture_on_commit_callbacks, when):
    response, callbacks = post(api, django_capture_on_commit_callbacks, {**SEND, "scheduled_at": when})
    refused(response, "scheduled_at", DATE_ONLY_MESSAGE)
    assert_nothing_happened(redis_conn, callbacks)


def test_offset_of_14_hours_is_accepted(api, django_capture_on_commit_callbacks):
    due = (timezone.now() + timedelta(days=2)).astimezone(timezone.get_fixed_timezone(14 * 60)).replace(microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/tasks/", {**SEND, "scheduled_at": due.isoformat()}, format="json")
    assert response.status_code == 201
    assert Task.objects.get().reserved_at == due


# --- what must get through --------------------------------------------------------------------------


@pytest.mark.parametrize(("typed", "stored", "to"), NAMED, ids=NAMED_IDS)
def test_named_recipient_is_kept_and_encoded_in_to(api, django_capture_on_commit_callbacks, typed, stored, to):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/tasks/", {**SEND, "recipients": [typed, "c@example.com"]}, format="json")
    assert response.status_code == 201, response.content
    task = Task.objects.get()
    assert task.recipients == [stored, "c@example.com"]
    assert response.json()["recipients"] == [typed, "c@example.com"]
    [first, second] = sent_messages()
    assert (first["To"], second["To"]) == (to, "c@example.com")


def test_idn_domain_goes_out_in_punycode(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/tasks/", {**SEND, "recipients": ["Bob <bob@bücher.example>"]}, format="json")
    assert response.status_code == 201, response.content
    [message] = sent_messages()
    assert message["To"] == "Bob <bob@xn--bcher-kva.example>"


def test_plain_text_parts_are_not_html_escaped(api, django_capture_on_commit_callbacks):
    body = {**SEND, "context": {"name": "Tom & Jerry", "site_name": "Tom & Jerry <co>"}}
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/tasks/", body, format="json").status_code == 201
    sent_messages()
    from django.core import mail

    [message] = mail.outbox
    assert message.subject == "Welcome to Tom & Jerry <co>, Tom & Jerry"
    assert "Hello Tom & Jerry," in message.body and "Welcome to Tom & Jerry <co>." in message.body
    html = message.alternatives[0].content
    assert "Hello Tom &amp; Jerry," in html and "Tom &amp; Jerry &lt;co&gt;" in html


def test_context_at_the_limits_is_accepted(api, django_capture_on_commit_callbacks):
    from tests.tasks.input_cases import nested

    context = {"name": "Ann", "deep": nested(6), "message": "x" * 15000}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/tasks/", {**SEND, "context": context}, format="json")
    assert response.status_code == 201, response.content
    assert Task.objects.get().context == context


def test_named_and_idn_recipients_over_real_smtp(api, smtp, django_capture_on_commit_callbacks):
    """Through the SMTP backend to the sink: bare ASCII envelope addresses, names encoded in To:, punycode."""
    recipients = ['"Name, Jr." <a@example.com>', "밥 <bob@example.com>", "Bob <bob@bücher.example>"]
    body = {**SEND, "recipients": recipients, "context": {"name": "Tom & Jerry"}}
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/tasks/", body, format="json").status_code == 201
    sent_messages()
    received = sorted(smtp.received, key=lambda r: r.rcpt_tos)
    assert [r.rcpt_tos for r in received] == [["a@example.com"], ["bob@example.com"], ["bob@xn--bcher-kva.example"]]
    assert [r.message["To"] for r in received] == [
        '"Name, Jr." <a@example.com>',
        "=?utf-8?b?67Cl?= <bob@example.com>",
        "Bob <bob@xn--bcher-kva.example>",
    ]
    assert all(r.message["Subject"] == "Welcome to reservemail, Tom & Jerry" for r in received)
    assert Task.objects.get().status == "finished"
