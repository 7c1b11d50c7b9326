from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from tasks.exceptions import ReservationError
from tasks.mail import MailSpec
from tasks.validation import clean_mail, clean_recipients, ensure_description, ensure_reservable

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
