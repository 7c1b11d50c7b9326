"""Send a test to me: one recipient's copy, now, to the signed-in user's own address, as a task of its own.

The test goes through the ordinary pipeline (enqueue_task, a worker, the SMTP relay): it is a QUEUED
task in the owner's history and counts against the daily quota, flagged ``is_test``, with one
recipient (the owner, carrying the chosen recipient's name and merge data) and a marker before
its Subject. The web process never talks SMTP.
"""

from __future__ import annotations

from typing import cast

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tasks.exceptions import ReservationError
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.recipients import Recipient
from tasks.services.create import enqueue_task
from tasks.services.preview import choose_recipient
from tasks.services.submit import ensure_send_quota
from tasks.validation import clean_address, clean_mail


def marker_text() -> str:
    """What starts a test's Subject, in the active language."""
    return _("[TEST]") + " "


def own_address(owner: AbstractBaseUser) -> str:
    """The owner's e-mail address, cleaned; ReservationError (code ``no_email``) when the account has none."""
    address = (cast(User, owner).email or "").strip()
    if not address:
        raise ReservationError(
            _("Your account has no e-mail address, so a test cannot be sent to you. Add one to your account first."),
            code="no_email",
        )
    try:
        return clean_address(address)
    except ReservationError:
        raise ReservationError(
            _("Your account's e-mail address “%(address)s” cannot receive mail from this service.")
            % {"address": address[:254]},
            code="no_email",
        ) from None


def send_test(*, owner: AbstractBaseUser, mail: MailSpec, recipient: str | None = None, description: str = "") -> Task:
    """Create a QUEUED test task sending ``recipient``'s copy (default: the first recipient's) to the owner.

    The whole ``mail`` is checked as a send would be. The owner's user row is locked while the
    daily quota is counted. Raises ReservationError (bad input, or ``no_email``), QuotaExceededError,
    and whatever enqueue_task raises (QueueUnavailableError after commit).
    """
    address = own_address(owner)
    cleaned = clean_mail(mail)
    chosen = choose_recipient(cleaned, recipient)
    test_mail = MailSpec(
        template=cleaned.template,
        recipients=(Recipient(address=address, name=chosen.name, context=chosen.context).as_stored(),),
        context=cleaned.context,
    )
    shown = description.strip() or _("Test of %(template)s") % {"template": cleaned.template}
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=owner.pk).values_list("pk", flat=True).first()
        ensure_send_quota(owner=owner, now=timezone.now())
        return enqueue_task(owner=owner, mail=test_mail, description=shown[:200], test_marker=marker_text())
