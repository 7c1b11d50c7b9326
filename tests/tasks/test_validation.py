from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tasks.exceptions import ReservationError
from tasks.mail import MailSpec
from tasks.recipients import Recipient, split_entry, split_list
from tasks.validation import (
    aware_in_zone,
    clean_context,
    clean_mail,
    clean_recipients,
    ensure_description,
    ensure_offset_text,
    ensure_reservable,
)

NOW = datetime(2026, 11, 24, 9, 0, 0, tzinfo=UTC)


def test_ensure_reservable_rejects_naive_datetime():
    with pytest.raises(ReservationError, match="time zone") as info:
        ensure_reservable(datetime(2026, 11, 25, 9, 0), now=NOW)  # noqa: DTZ001 - the naive input under test
    assert info.value.field == "scheduled_at"


def test_ensure_reservable_rejects_past():
    with pytest.raises(ReservationError, match="at least 60 seconds"):
        ensure_reservable(NOW - timedelta(seconds=1), now=NOW)


def test_ensure_reservable_rejects_just_under_min_lead():
    with pytest.raises(ReservationError, match="at least 60 seconds"):
        ensure_reservable(NOW + timedelta(seconds=59, microseconds=999999), now=NOW)


def test_ensure_reservable_accepts_exactly_min_lead():
    ensure_reservable(NOW + timedelta(seconds=60), now=NOW)


def test_ensure_reservable_accepts_exactly_horizon_and_rejects_beyond():
    ensure_reservable(NOW + timedelta(days=365), now=NOW)
    with pytest.raises(ReservationError, match="within 365 days"):
        ensure_reservable(NOW + timedelta(days=365, seconds=1), now=NOW)


def test_ensure_reservable_accepts_other_zone_offsets():
    seoul = timezone.get_fixed_timezone(9 * 60)
    ensure_reservable((NOW + timedelta(hours=1)).astimezone(seoul), now=NOW)


@pytest.mark.parametrize("description", ["", "   ", None])
def test_ensure_description_requires_text(description):
    with pytest.raises(ReservationError, match="description is required") as info:
        ensure_description(description)
    assert info.value.field == "description"


def test_ensure_description_strips():
    assert ensure_description("  June newsletter ") == "June newsletter"


@pytest.mark.parametrize(
    "raw",
    ["not-an-address", "a@b", "alice@example.com, bob@", "x" * 300 + "@example.com", "alice@exa mple.com"],
)
def test_clean_recipients_rejects_malformed(raw):
    with pytest.raises(ReservationError, match="not a valid e-mail address|is too long"):
        clean_recipients(raw)


def test_clean_recipients_splits_and_deduplicates():
    assert clean_recipients("a@example.com, B@example.com\nb@example.com; c@example.com") == (
        "a@example.com",
        "B@example.com",
        "c@example.com",
    )


def test_clean_recipients_requires_one():
    with pytest.raises(ReservationError, match="at least one recipient"):
        clean_recipients(" , ")


def test_clean_recipients_caps_count(settings):
    settings.TASK_MAX_RECIPIENTS = 2
    with pytest.raises(ReservationError, match="At most 2 recipients"):
        clean_recipients(["a@example.com", "b@example.com", "c@example.com"])


def test_clean_mail_rejects_unknown_template():
    with pytest.raises(ReservationError, match="Unknown template “../settings”") as info:
        clean_mail(MailSpec(template="../settings", recipients=("a@example.com",), context={}))
    assert info.value.field == "template"


@pytest.mark.parametrize("context", [[1, 2], {1: "x"}, {"when": datetime(2026, 1, 1, tzinfo=UTC)}])
def test_clean_mail_rejects_non_json_context(context):
    with pytest.raises(ReservationError, match="context") as info:
        clean_mail(MailSpec(template="welcome", recipients=("a@example.com",), context=context))
    assert info.value.field == "context"


def test_clean_mail_accepts_allow_listed_template():
    mail = clean_mail(MailSpec(template="welcome", recipients=("a@example.com",), context={"name": "A"}))
    assert mail.recipients == ("a@example.com",)


def test_error_message_is_translated_to_korean():
    from django.utils import translation

    with translation.override("ko"), pytest.raises(ReservationError) as info:
        ensure_description("")
    assert info.value.message == "설명을 입력하세요."


# --- the input boundary of issue 12 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "entries"),
    [
        ("a@example.com, b@example.com", ["a@example.com", "b@example.com"]),
        ('"Name, Jr." <a@example.com>, b@example.com', ['"Name, Jr." <a@example.com>', "b@example.com"]),
        ('"a,b"@example.com; c@example.com\n\nd@example.com', ['"a,b"@example.com', "c@example.com", "d@example.com"]),
        ('Bob <b@example.com>\r\n"Q \\" x" <q@example.com>', ["Bob <b@example.com>", '"Q \\" x" <q@example.com>']),
        (" , ;\n", []),
    ],
)
def test_split_list_respects_quotes_and_angle_brackets(text, entries):
    assert split_list(text) == entries


@pytest.mark.parametrize(
    ("text", "pair"),
    [
        ("a@example.com", ("", "a@example.com")),
        ("Bob <b@example.com>", ("Bob", "b@example.com")),
        ('"Name, Jr." <a@example.com>', ("Name, Jr.", "a@example.com")),
        ('"Q \\" x" <q@example.com>', ('Q " x', "q@example.com")),
        ("<a@example.com>", ("", "a@example.com")),
    ],
)
def test_split_entry_reads_display_names(text, pair):
    assert split_entry(text) == pair


def test_clean_recipients_keeps_names_in_the_stored_shape_and_deduplicates_by_address():
    assert clean_recipients('Bob <b@example.com>, "Name, Jr." <a@example.com>, B@example.com, c@bücher.example') == (
        {"address": "b@example.com", "name": "Bob"},
        {"address": "a@example.com", "name": "Name, Jr."},
        "c@bücher.example",
    )


def test_clean_recipients_reads_the_stored_shape_back_for_a_retry():
    stored = ({"address": "a@example.com", "name": "Ann", "context": {"name": "A"}}, "b@example.com")
    assert clean_recipients(stored) == stored
    with pytest.raises(ReservationError, match="nests too deeply"):
        clean_recipients([{"address": "a@example.com", "context": {"a": [[[[[[[[1]]]]]]]]}}])


@pytest.mark.parametrize(
    ("recipient", "header", "label"),
    [
        (Recipient("a@example.com", "Name, Jr."), '"Name, Jr." <a@example.com>', '"Name, Jr." <a@example.com>'),
        (Recipient("a@bücher.example", "Bob"), "Bob <a@xn--bcher-kva.example>", "Bob <a@bücher.example>"),
        (Recipient("a@example.com"), "a@example.com", "a@example.com"),
    ],
)
def test_recipient_header_and_label(recipient, header, label):
    assert (recipient.header(), recipient.label()) == (header, label)


def test_local_part_of_64_and_address_of_254_are_accepted():
    local = "x" * 64
    domain = ".".join(["d" * 63, "d" * 63, "d" * 53]) + ".example"  # 254 - 65 = 189 characters
    assert len(f"{local}@{domain}") == 254
    assert clean_recipients([f"{local}@{domain}"]) == (f"{local}@{domain}",)


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({1: "x"}, "text keys"),
        ({"a": {"b": {2: "x"}}}, "text keys"),
        ({"a": float("-inf")}, "not finite"),
        ({"a": [1, 2, float("nan")]}, "not finite"),
        ({"a": object()}, "only JSON values"),
        ({"a": 10**5000}, "only JSON values"),
        ([1], "JSON object"),
        ({"a": [[[[[[[[1]]]]]]]]}, "at most 8 levels"),
        ({"a": "é" * 8200}, "at most 16 KB"),  # 16,400 bytes of UTF-8, under 16 K characters
    ],
)
def test_clean_context_refuses_with_the_limit_in_the_message(context, message):
    with pytest.raises(ReservationError, match=message) as info:
        clean_context(context)
    assert info.value.field == "context"


def test_clean_context_accepts_the_limits():
    context = {"a": [[[[[[1]]]]]], "b": "x" * 16000, "c": None, "d": True, "e": 1.5}
    assert clean_context(context) is context


def test_aware_in_zone_reads_existing_local_times_and_refuses_the_others():
    import zoneinfo

    new_york = zoneinfo.ZoneInfo("America/New_York")
    assert aware_in_zone(datetime(2027, 3, 14, 3, 30), new_york).utcoffset() == timedelta(hours=-4)  # noqa: DTZ001
    with pytest.raises(ReservationError, match="does not exist") as gap:
        aware_in_zone(datetime(2027, 3, 14, 2, 30), new_york)  # noqa: DTZ001
    with pytest.raises(ReservationError, match="happens twice") as twice:
        aware_in_zone(datetime(2027, 11, 7, 1, 30), new_york)  # noqa: DTZ001
    assert (gap.value.code, twice.value.code) == ("nonexistent_time", "ambiguous_time")
    with pytest.raises(ReservationError, match="between -14:00 and \\+14:00"):
        aware_in_zone(datetime(2027, 1, 1, tzinfo=timezone.get_fixed_timezone(15 * 60)))


@pytest.mark.parametrize("text", ["2027-01-01T10:00+14:60", "2027-01-01T10:00-1430", "2027-01-01T10:00:00.5+23:00"])
def test_ensure_offset_text_refuses(text):
    with pytest.raises(ReservationError, match="UTC offset"):
        ensure_offset_text(text)


@pytest.mark.parametrize("text", ["2027-01-01T10:00+14:00", "2027-01-01T10:00-12", "2027-01-01T10:00Z", "2027-03-15"])
def test_ensure_offset_text_accepts(text):
    ensure_offset_text(text)


def test_subject_check_uses_the_longest_address_and_refuses_control_characters():
    with pytest.raises(ReservationError, match="control character"):
        clean_mail(MailSpec(template="welcome", recipients=("a@example.com",), context={"name": "a\u0007b"}))
    with pytest.raises(ReservationError, match="at most 250 are allowed") as info:
        clean_mail(MailSpec(template="welcome", recipients=("a@example.com",), context={"name": "x " * 200}))
    assert (info.value.field, info.value.code) == ("context", "subject_too_long")


@pytest.mark.parametrize(
    "context",
    [{"name": "a\u0000b"}, {"a\u0000": "b"}, {"list": ["ok", {"deep": "x\u0000"}]}, {"name": "\ud800"}, {"\udfff": 1}],
    ids=["nul-value", "nul-key", "nul-deep", "surrogate-value", "surrogate-key"],
)
def test_context_text_that_cannot_be_stored_is_refused(context):
    """PostgreSQL refuses U+0000 in text and jsonb, UTF-8 a lone surrogate: a 400 here, not a 500 at the INSERT."""
    with pytest.raises(ReservationError, match="cannot be stored") as info:
        clean_mail(MailSpec(template="welcome", recipients=("a@example.com",), context=context))
    assert info.value.field == "context"


@pytest.mark.parametrize(
    "recipient",
    [{"address": "x@example.com", "name": "\ud800"}, '"\ud800" <x@example.com>', "x\udc00@example.com"],
    ids=["object-name", "quoted-name", "address"],
)
def test_a_lone_surrogate_in_a_recipient_is_refused(recipient):
    with pytest.raises(ReservationError, match="U\\+D[8C]00") as info:
        clean_mail(MailSpec(template="welcome", recipients=(recipient,), context={}))
    assert info.value.field == "recipients"
