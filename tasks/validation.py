"""Checks of a send's input, shared by every service that creates or moves a task."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.template import TemplateSyntaxError
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks.exceptions import ReservationError
from tasks.mail import MailSpec, available_templates, check_renders

MAX_ADDRESS_LENGTH = 254  # RFC 5321 path limit, and Delivery.address


def ensure_reservable(scheduled_at: datetime, *, now: datetime) -> None:
    """Raise ReservationError unless ``scheduled_at`` is aware and inside [now + lead, now + horizon]."""
    if not isinstance(scheduled_at, datetime) or timezone.is_naive(scheduled_at):
        raise ReservationError(_("The reservation time must include a time zone."), field="scheduled_at")
    lead = timedelta(seconds=settings.RESERVATION_MIN_LEAD)
    if scheduled_at < now + lead:
        raise ReservationError(
            _("The reservation time must be at least %(seconds)d seconds in the future.")
            % {"seconds": settings.RESERVATION_MIN_LEAD},
            field="scheduled_at",
        )
    if scheduled_at > now + timedelta(seconds=settings.RESERVATION_MAX_HORIZON):
        raise ReservationError(
            _("The reservation time must be within %(days)d days from now.")
            % {"days": settings.RESERVATION_MAX_HORIZON // 86400},
            field="scheduled_at",
        )


def ensure_description(description: str) -> str:
    cleaned = (description or "").strip()
    if not cleaned:
        raise ReservationError(_("A description is required."), field="description")
    if len(cleaned) > 200:
        raise ReservationError(_("The description is at most 200 characters."), field="description")
    return cleaned


def clean_recipients(recipients: Sequence[object] | str) -> tuple[str, ...]:
    """Split, strip, validate and de-duplicate (case-insensitively) the recipient addresses."""
    if isinstance(recipients, str):
        recipients = recipients.replace(";", ",").replace("\n", ",").split(",")
    cleaned: list[str] = []
    seen: set[str] = set()
    for raw in recipients:
        if not isinstance(raw, str):
            raise ReservationError(_("Recipients must be e-mail addresses."), field="recipients")
        address = raw.strip()
        if not address:
            continue
        try:
            if len(address) > MAX_ADDRESS_LENGTH:
                raise ValidationError("too long")
            validate_email(address)
        except ValidationError:
            raise ReservationError(
                _("“%(address)s” is not a valid e-mail address.") % {"address": address[:100]}, field="recipients"
            ) from None
        if address.lower() not in seen:
            seen.add(address.lower())
            cleaned.append(address)
    if not cleaned:
        raise ReservationError(_("Enter at least one recipient."), field="recipients")
    if len(cleaned) > settings.TASK_MAX_RECIPIENTS:
        raise ReservationError(
            _("At most %(n)d recipients per send.") % {"n": settings.TASK_MAX_RECIPIENTS}, field="recipients"
        )
    return tuple(cleaned)


def clean_mail(mail: MailSpec) -> MailSpec:
    """Return ``mail`` with cleaned recipients; raise ReservationError for any invalid part."""
    if mail.template not in available_templates():
        raise ReservationError(_("Unknown template “%(name)s”.") % {"name": str(mail.template)[:100]}, field="template")
    context = mail.context if mail.context is not None else {}
    if not isinstance(context, dict) or not all(isinstance(k, str) for k in context):
        raise ReservationError(_("The context must be an object with text keys."), field="context")
    try:
        json.dumps(context)
    except (TypeError, ValueError):
        raise ReservationError(_("The context must contain only JSON values."), field="context") from None
    recipients = clean_recipients(mail.recipients)
    try:
        check_renders(template=mail.template, context=context)
    except (TemplateSyntaxError, ValueError, TypeError) as exc:
        raise ReservationError(
            _("The template cannot be rendered: %(error)s") % {"error": exc}, field="context"
        ) from None
    return MailSpec(template=mail.template, recipients=recipients, context=context)
