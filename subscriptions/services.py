"""Writes of the suppression list: unsubscribe (page, one-click, admin, API), change, remove."""

from __future__ import annotations

import logging
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from reservemail.addresses import validate_any_address
from subscriptions.exceptions import SuppressionError
from subscriptions.models import ALL_BULK, Suppression

logger = logging.getLogger(__name__)

_LIST_NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _clean(address: str, list_name: str) -> tuple[str, str]:
    """Why validate_any_address: a link in mail sent while EMAIL_SMTPUTF8 was on still unsubscribes once it is off;
    the admin and the API, which people type into, follow the setting (their fields check first)."""
    address = address.strip().lower()
    try:
        validate_any_address(address)
    except ValidationError as exc:
        raise SuppressionError(_("Enter a valid email address."), field="address") from exc
    if len(address) > 254:
        raise SuppressionError(_("Enter a valid email address."), field="address")
    list_name = list_name.strip()
    if list_name != ALL_BULK and not _LIST_NAME.fullmatch(list_name):
        raise SuppressionError(
            _("A list name is letters, digits, - and _ (up to 100), or empty for all bulk mail."), field="list_name"
        )
    return address, list_name


@transaction.atomic
def suppress_address(*, address: str, list_name: str, how: str) -> tuple[Suppression, bool]:
    """Stop bulk mail of ``list_name`` (ALL_BULK: every bulk list) to ``address``; idempotent.

    Returns the suppression and whether it is new. An address already suppressed for the list or for all bulk mail
    gets no second row: the existing one is returned (created False), its ``how`` and time unchanged.
    Raises SuppressionError for an invalid address or list name.
    """
    address, list_name = _clean(address, list_name)
    existing = (
        Suppression.objects.filter(address=address, list_name__in={list_name, ALL_BULK}).order_by("list_name").last()
    )
    if existing is not None:
        return existing, False
    suppression, created = Suppression.objects.get_or_create(
        address=address, list_name=list_name, defaults={"how": how}
    )
    if created:
        logger.info("suppressed address list=%s how=%s suppression_id=%s", list_name or "*", how, suppression.pk)
    return suppression, created


@transaction.atomic
def change_suppression(*, suppression_id: int, address: str, list_name: str) -> Suppression:
    """Change the address or list of suppression ``suppression_id`` (the admin's edit).

    Raises Suppression.DoesNotExist if it is gone, SuppressionError for invalid input or a duplicate.
    """
    address, list_name = _clean(address, list_name)
    suppression = Suppression.objects.select_for_update().get(pk=suppression_id)
    suppression.address, suppression.list_name = address, list_name
    try:
        with transaction.atomic():
            suppression.save(update_fields=["address", "list_name"])
    except IntegrityError as exc:
        raise SuppressionError(_("This address is already suppressed for this list."), code="duplicate") from exc
    return suppression


@transaction.atomic
def remove_suppression(*, suppression_id: int) -> bool:
    """Delete suppression ``suppression_id`` (bulk mail goes to that address again); False if already gone."""
    deleted, _rows = Suppression.objects.filter(pk=suppression_id).delete()
    if deleted:
        logger.info("suppression removed suppression_id=%s", suppression_id)
    return bool(deleted)
