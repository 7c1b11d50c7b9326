"""Reads of the suppression list: for the send loop (one query per slice), the page, the admin and the API."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from subscriptions.models import ALL_BULK, Suppression


def suppressed_among(pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Return those (address, list name) ``pairs`` whose address gets no more mail of that list: suppressed
    for the list or for all bulk mail. Addresses are compared lower-cased; pairs are returned as given. One query.
    """
    wanted = {(address, list_name) for address, list_name in pairs}
    if not wanted:
        return set()
    addresses = {address.lower() for address, _list in wanted}
    lists = {list_name for _address, list_name in wanted} | {ALL_BULK}
    rows = Suppression.objects.filter(address__in=addresses, list_name__in=lists).values_list("address", "list_name")
    found = set(rows)
    return {
        (address, list_name)
        for address, list_name in wanted
        if (address.lower(), list_name) in found or (address.lower(), ALL_BULK) in found
    }


def is_suppressed(*, address: str, list_name: str) -> bool:
    """Whether ``address`` gets no more mail of ``list_name`` (suppressed for it, or for all bulk mail)."""
    return bool(suppressed_among([(address, list_name)]))


def list_suppressions() -> QuerySet[Suppression]:
    """Return the whole suppression list, newest first."""
    return Suppression.objects.order_by("-created_at", "-pk")
