"""Checks of a send's input, shared by every door (mail form, admin, API) through the services.

Each class of bad input is refused here, once, with a message for the person who typed it:
addresses (RFC 5321 limits in octets, no control characters, UTF-8 local parts only with
EMAIL_SMTPUTF8), the context (a JSON object of bounded depth and size, finite numbers, text keys),
what reaches the Subject header, and times (aware, existing, unambiguous, a real UTC offset).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import TemplateSyntaxError
from django.utils import timezone
from django.utils.translation import gettext as _

from reservemail.addresses import validate_address
from tasks.exceptions import ReservationError
from tasks.mail import MailSpec, available_templates, check_renders
from tasks.recipients import Recipient, StoredRecipient, split_entry, split_list

MAX_ADDRESS_LENGTH = 254  # octets of local@domain (domain in punycode): RFC 5321 4.5.3.1.3, and Delivery.address
MAX_LOCAL_PART_LENGTH = 64  # octets before the @: RFC 5321 4.5.3.1.1
MAX_NAME_LENGTH = 200  # characters of a display name ("Name <address>")
CONTEXT_MAX_DEPTH = 8  # levels of objects and lists, the context object itself being the first
CONTEXT_MAX_BYTES = 16 * 1024  # the context as compact UTF-8 JSON
MAX_SUBJECT_LENGTH = 250  # characters of the rendered Subject (whitespace collapsed); far below the 998-octet line
MAX_UTC_OFFSET = timedelta(hours=14)  # the widest offset in use (Kiribati, +14:00)

# C0 controls, DEL, C1 controls, the two Unicode line breaks the email package also splits lines on,
# and lone surrogates (a JSON "\ud800" is text that no database or mail can hold).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# What a context string cannot hold: PostgreSQL's text and jsonb refuse U+0000, UTF-8 a lone surrogate.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _shown(text: str, limit: int = 100) -> str:
    """``text`` safe to put in a message: control characters as \\uXXXX, cut at ``limit``."""
    shown = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def _control_at(text: str) -> str | None:
    match = _CONTROL.search(text)
    return f"U+{ord(match.group()):04X}" if match else None


# --- times ----------------------------------------------------------------------------------------


def ensure_reservable(scheduled_at: datetime, *, now: datetime) -> None:
    """Raise ReservationError unless ``scheduled_at`` is aware and inside [now + lead, now + horizon]."""
    if not isinstance(scheduled_at, datetime) or timezone.is_naive(scheduled_at):
        raise ReservationError(_("The reservation time must include a time zone."), field="scheduled_at")
    ensure_utc_offset(scheduled_at)
    lead = timedelta(seconds=settings.RESERVATION_MIN_LEAD)
    if scheduled_at < now + lead:
        raise ReservationError(
            _("The reservation time must be at least %(seconds)d seconds in the future.")
            % {"seconds": settings.RESERVATION_MIN_LEAD},
            field="scheduled_at",
        )
    if beyond_horizon(scheduled_at, now=now):
        raise ReservationError(
            _("The reservation time must be within %(days)d days from now.")
            % {"days": settings.RESERVATION_MAX_HORIZON // 86400},
            field="scheduled_at",
        )


def beyond_horizon(at: datetime, *, now: datetime) -> bool:
    """Whether ``at`` is too far ahead to be reserved now (RESERVATION_MAX_HORIZON): one test for tasks and series."""
    return at > now + timedelta(seconds=settings.RESERVATION_MAX_HORIZON)


def ensure_utc_offset(value: datetime) -> None:
    """Raise ReservationError if an aware ``value``'s offset is beyond ±14:00."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) > MAX_UTC_OFFSET:
        raise ReservationError(
            _("The UTC offset must be between -14:00 and +14:00."), code="invalid_offset", field="scheduled_at"
        )


# An offset written after a time of day: 10:00+09:00, 10:00:00.5-0430, 10:00+09.
_OFFSET_TEXT = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*[+-](?P<hours>\d{2})(?::?(?P<minutes>\d{2}))?$")


def ensure_offset_text(text: str) -> None:
    """Raise ReservationError if ``text`` ends in an offset with minutes of 60 or more, or beyond ±14:00.

    Django's parser reads ``+14:60`` as ``+15:00``; a client that wrote it meant something else.
    """
    match = _OFFSET_TEXT.search(text.strip())
    if match is None:
        return
    hours, minutes = int(match.group("hours")), int(match.group("minutes") or 0)
    if minutes >= 60 or timedelta(hours=hours, minutes=minutes) > MAX_UTC_OFFSET:
        raise ReservationError(
            _("The UTC offset must be between -14:00 and +14:00, with minutes below 60."),
            code="invalid_offset",
            field="scheduled_at",
        )


def ensure_time_of_day(text: str) -> None:
    """Raise ReservationError if ``text`` is a date without a time of day (``2026-12-25``, ``20261225``).

    Python and Django read a date alone as midnight; a client that sent one did not mean 00:00 in the
    user's zone, and the time a mail goes out is not to be guessed.
    """
    try:
        date.fromisoformat(text.strip())
    except ValueError:
        return  # a date and time, or not a date at all: the field's own parsing answers that
    raise ReservationError(
        _("Give a time of day with the date, e.g. 2026-12-25T09:00 (your time zone) or 2026-12-25T09:00+09:00."),
        code="date_only",
        field="scheduled_at",
    )


def aware_in_zone(value: datetime, zone: tzinfo | None = None) -> datetime:
    """Return ``value`` as an aware datetime; a naive one is read in ``zone`` (default: the current zone).

    The one reading of a typed local time for every door. Raises ReservationError if that local
    time does not exist there (clocks skip it) or happens twice (clocks go back), or if an aware
    value's offset is beyond ±14:00.
    """
    if timezone.is_aware(value):
        ensure_utc_offset(value)
        return value
    zone = zone or timezone.get_current_timezone()
    early, late = value.replace(tzinfo=zone, fold=0), value.replace(tzinfo=zone, fold=1)
    if early.utcoffset() == late.utcoffset():
        return early
    shown = {"time": value.strftime("%Y-%m-%d %H:%M"), "zone": str(zone)}
    if early.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != value:
        message = _(
            "%(time)s does not exist in %(zone)s: the clocks skip it when daylight saving time starts. "
            "Choose another time."
        )
        raise ReservationError(message % shown, code="nonexistent_time", field="scheduled_at")
    message = _(
        "%(time)s happens twice in %(zone)s: the clocks go back when daylight saving time ends. "
        "Choose another time, or give the time with its UTC offset."
    )
    raise ReservationError(message % shown, code="ambiguous_time", field="scheduled_at")


# --- description ----------------------------------------------------------------------------------


def ensure_description(description: str) -> str:
    cleaned = (description or "").strip()
    if not cleaned:
        raise ReservationError(_("A description is required."), field="description")
    if len(cleaned) > 200:
        raise ReservationError(_("The description is at most 200 characters."), field="description")
    return cleaned


# --- addresses ------------------------------------------------------------------------------------


def _invalid_address(address: str) -> ReservationError:
    return ReservationError(
        _("“%(address)s” is not a valid e-mail address.") % {"address": _shown(address)}, field="recipients"
    )


def clean_address(address: str) -> str:
    """Return the bare ``address`` (stripped) if it can be sent as it is; raise ReservationError otherwise.

    Refused: control characters anywhere (quoted or not), a non-ASCII local part while
    EMAIL_SMTPUTF8 is off (it needs SMTPUTF8; with it on, the local part is kept in NFC, as RFC 6532
    asks), a local part over 64 octets of UTF-8, an address over 254 octets (the domain counted in
    punycode, as it goes on the wire), and whatever reservemail.addresses.validate_address refuses.
    """
    address = address.strip()
    char = _control_at(address)
    if char:
        raise ReservationError(
            _("“%(address)s” contains a control character (%(char)s); e-mail addresses cannot contain one.")
            % {"address": _shown(address), "char": char},
            field="recipients",
        )
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise _invalid_address(address)
    if not local.isascii():
        if not settings.EMAIL_SMTPUTF8:
            raise ReservationError(
                _(
                    "“%(address)s” has non-ASCII characters before the @. Sending to it needs a mail server with "
                    "SMTPUTF8, which is turned off here (an administrator turns it on with EMAIL_SMTPUTF8=1 when "
                    "the mail relay supports it); until then, ask for an address in plain ASCII."
                )
                % {"address": _shown(address)},
                field="recipients",
            )
        local = unicodedata.normalize("NFC", local)
        address = f"{local}@{domain}"
    if len(local.encode()) > MAX_LOCAL_PART_LENGTH:
        message = (
            _("“%(address)s” is too long before the @: at most %(limit)d characters are allowed.")
            if local.isascii()
            else _(
                "“%(address)s” is too long before the @: at most %(limit)d bytes are allowed in UTF-8 "
                "(a Korean letter takes 3)."
            )
        )
        raise ReservationError(
            message % {"address": _shown(address), "limit": MAX_LOCAL_PART_LENGTH}, field="recipients"
        )
    try:
        wire_domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise _invalid_address(address) from None
    if len(local.encode()) + 1 + len(wire_domain) > MAX_ADDRESS_LENGTH:
        raise ReservationError(
            _("“%(address)s” is too long: an address has at most %(limit)d characters.")
            % {"address": _shown(address), "limit": MAX_ADDRESS_LENGTH},
            field="recipients",
        )
    try:
        validate_address(address)
    except ValidationError:
        raise _invalid_address(address) from None
    return address


def clean_name(name: str) -> str:
    """Return the display name, stripped; refuse control characters and names over MAX_NAME_LENGTH."""
    name = name.strip()
    char = _control_at(name)
    if char:
        raise ReservationError(
            _("The name “%(name)s” contains a control character (%(char)s).") % {"name": _shown(name), "char": char},
            field="recipients",
        )
    if len(name) > MAX_NAME_LENGTH:
        raise ReservationError(
            _("The name “%(name)s” is too long: at most %(limit)d characters.")
            % {"name": _shown(name), "limit": MAX_NAME_LENGTH},
            field="recipients",
        )
    return name


# A bare ASCII address with no name, quotes, spaces or controls: it needs only clean_address.
_PLAIN_ADDRESS = re.compile(r"[!#-'*+\-./0-9=?A-Z^-~]+@[-.0-9A-Za-z]+")


def clean_recipient(raw: object) -> Recipient:
    """One recipient as a door sends it: ``a@b.c``, ``Name <a@b.c>``, ``"Name, Jr." <a@b.c>`` or a stored object."""
    if isinstance(raw, str) and _PLAIN_ADDRESS.fullmatch(raw):  # most entries: skip the splitting and its checks
        return Recipient(address=clean_address(raw))
    if isinstance(raw, str):
        char = _control_at(raw.strip())
        if char:  # checked before splitting, which strips the name and the address
            raise ReservationError(
                _("“%(entry)s” contains a control character (%(char)s); e-mail addresses cannot contain one.")
                % {"entry": _shown(raw.strip()), "char": char},
                field="recipients",
            )
        name, address = split_entry(raw)
        if not address:
            raise _invalid_address(raw)
        return Recipient(address=clean_address(address), name=clean_name(name))
    if isinstance(raw, Mapping) and isinstance(raw.get("address"), str) and set(raw) <= {"address", "name", "context"}:
        name = raw.get("name") or ""
        if not isinstance(name, str):
            raise ReservationError(_("A recipient's name must be text."), field="recipients")
        context = clean_context(raw.get("context"), field="recipients")
        return Recipient(address=clean_address(raw["address"]), name=clean_name(name), context=context)
    raise ReservationError(_("Recipients must be e-mail addresses."), field="recipients")


def clean_recipients(recipients: Sequence[object] | str) -> tuple[StoredRecipient, ...]:
    """Split (a typed list), validate and de-duplicate (case-insensitively) the recipients, in their stored shape."""
    return tuple(recipient.as_stored() for recipient in _clean_recipient_list(recipients))


def _clean_recipient_list(recipients: Sequence[object] | str) -> list[Recipient]:
    if isinstance(recipients, str):
        recipients = split_list(recipients)
    cleaned: list[Recipient] = []
    seen: set[str] = set()
    for raw in recipients:
        if isinstance(raw, str) and not raw.strip():
            continue
        recipient = clean_recipient(raw)
        if recipient.address.lower() not in seen:
            seen.add(recipient.address.lower())
            cleaned.append(recipient)
    if not cleaned:
        raise ReservationError(_("Enter at least one recipient."), field="recipients")
    if len(cleaned) > settings.TASK_MAX_RECIPIENTS:
        raise ReservationError(
            _("At most %(n)d recipients per send.") % {"n": settings.TASK_MAX_RECIPIENTS}, field="recipients"
        )
    return cleaned


# --- context --------------------------------------------------------------------------------------


def _context_error(message: str, field: str) -> ReservationError:
    return ReservationError(message, field=field)


def _check_text(value: str, field: str) -> None:
    match = _UNSTORABLE.search(value)
    if match:
        raise _context_error(
            _("The context holds a character that cannot be stored (U+%(code)04X); remove it.")
            % {"code": ord(match.group())},
            field,
        )


def _check_scalar(value: object, field: str) -> None:
    if isinstance(value, str):
        _check_text(value, field)
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise _context_error(
            _("The context holds a number that is not finite (NaN, Infinity, or too large); use finite numbers."),
            field,
        )
    if value is not None and not isinstance(value, str | int | float | bool):
        raise _context_error(_("The context must contain only JSON values."), field)


def clean_context(context: object, *, field: str = "context") -> dict[str, Any]:
    """Return ``context`` if it is a JSON object within the limits; raise ReservationError otherwise.

    Limits: text keys, finite numbers, at most CONTEXT_MAX_DEPTH levels of objects and lists (the
    object itself is the first), at most CONTEXT_MAX_BYTES as compact UTF-8 JSON. The walk is
    iterative, so no depth of input can exhaust the stack.
    """
    if context is None:
        return {}
    limits = {"depth": CONTEXT_MAX_DEPTH, "kb": CONTEXT_MAX_BYTES // 1024}
    if not isinstance(context, dict):
        raise _context_error(_('The context must be a JSON object, e.g. {"name": "Alice"}.'), field)
    stack: list[tuple[object, int]] = [(context, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > CONTEXT_MAX_DEPTH:
            raise _context_error(
                _("The context nests too deeply: at most %(depth)d levels of objects and lists.") % limits, field
            )
        children: Any = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict):
            if not all(isinstance(key, str) for key in item):
                raise _context_error(_("The context must be an object with text keys."), field)
            for key in item:
                _check_text(key, field)
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            else:
                _check_scalar(child, field)
    try:
        size = len(json.dumps(context, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError):
        raise _context_error(_("The context must contain only JSON values."), field) from None
    if size > CONTEXT_MAX_BYTES:
        raise _context_error(
            _("The context is too big: %(size)d bytes as JSON, at most %(kb)d KB.") % {**limits, "size": size}, field
        )
    return context


# --- the whole mail -------------------------------------------------------------------------------


def _check_subject(subject: str) -> None:
    """What reaches the Subject header: no control characters, at most MAX_SUBJECT_LENGTH characters."""
    if len(subject) > MAX_SUBJECT_LENGTH:
        raise ReservationError(
            _(
                "The subject would be %(length)d characters long with these values; at most %(limit)d are "
                "allowed. Shorten the values the subject uses."
            )
            % {"length": len(subject), "limit": MAX_SUBJECT_LENGTH},
            code="subject_too_long",
            field="context",
        )
    char = _control_at(subject)
    if char:
        raise ReservationError(
            _("The subject would contain a control character (%(char)s).") % {"char": char}, field="context"
        )


def _check_renders(template: str, context: dict[str, Any], recipients: Sequence[Recipient]) -> None:
    """Render for the longest address (a subject may show it) and for each recipient with values of its own."""
    longest = max(recipients, key=lambda r: len(r.address))
    checks = [(context, longest.address)] + [(r.merged_context(context), r.address) for r in recipients if r.context]
    for values, address in checks:
        try:
            subject = check_renders(template=template, context=values, recipient=address)
        except (TemplateSyntaxError, ValueError, TypeError) as exc:
            raise ReservationError(
                _("The template cannot be rendered: %(error)s") % {"error": exc}, field="context"
            ) from None
        _check_subject(subject)


def clean_mail(mail: MailSpec) -> MailSpec:
    """Return ``mail`` with cleaned recipients and context; raise ReservationError for any invalid part."""
    if mail.template not in available_templates():
        name = _shown(str(mail.template))
        raise ReservationError(_("Unknown template “%(name)s”.") % {"name": name}, field="template")
    context = clean_context(mail.context)
    recipients = _clean_recipient_list(mail.recipients)
    _check_renders(mail.template, context, recipients)
    stored = tuple(recipient.as_stored() for recipient in recipients)
    return MailSpec(template=mail.template, recipients=stored, context=context)
