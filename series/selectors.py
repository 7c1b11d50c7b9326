"""Reads of series for pages, the API and the services."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from series.exceptions import SeriesNotFoundError
from series.models import Series
from series.rules import repeats_code
from tasks.models import Task


def list_series_of(owner: AbstractBaseUser | AnonymousUser | None) -> QuerySet[Series]:
    """The owner's series, newest first; every series for ``owner=None`` (staff)."""
    rows = Series.objects.all()
    return rows if owner is None else rows.filter(owner_id=owner.pk)


def get_series_of(owner: AbstractBaseUser | AnonymousUser | None, series_id: int) -> Series:
    """The series ``series_id`` of ``owner`` (any owner for None); SeriesNotFoundError otherwise."""
    series = list_series_of(owner).filter(pk=series_id).first()
    if series is None:
        raise SeriesNotFoundError(_("Series #%(id)s was not found.") % {"id": series_id})
    return series


def with_next_send(rows: QuerySet[Series]) -> QuerySet[Series]:
    """The series with ``next_send_at``, when its next mail goes out, for pages.

    That is its waiting occurrence's time, which the owner may have moved on its own (tasks'
    reschedule or edit), else ``next_at`` (beyond the reservation horizon no task exists yet).
    ``next_at`` itself stays the rule's slot: the claim counts the rule on from the later of the
    two, so an occurrence moved earlier still stands in for its slot and is not followed by it.
    """
    waiting = Task.objects.filter(series_id=OuterRef("pk"), status=Task.Status.RESERVED).values("reserved_at")[:1]
    return rows.annotate(next_send_at=Coalesce(Subquery(waiting), "next_at"))


def get_series_shown_of(owner: AbstractBaseUser | AnonymousUser, series_id: int) -> Series:
    """The owner's series ``series_id`` for its page: as get_series_of, with ``next_send_at``."""
    series = with_next_send(list_series_of(owner)).filter(pk=series_id).first()
    if series is None:
        raise SeriesNotFoundError(_("Series #%(id)s was not found.") % {"id": series_id})
    return series


def occurrences_of(series_id: int) -> QuerySet[Task]:
    """The tasks a series created, newest first."""
    return Task.objects.filter(series_id=series_id).defer("recipients", "context", "log").order_by("-pk")


def repeats_of(series_id: int) -> str:
    """The frequency word of a series' rule ("weekly"), or "" if it is gone."""
    rule = Series.objects.filter(pk=series_id).values_list("rule", flat=True).first()
    return repeats_code(rule or "")


def waiting_occurrence(series_id: int) -> Task | None:
    """The series' RESERVED occurrence (at most one: a constraint), or None."""
    return Task.objects.filter(series_id=series_id, status=Task.Status.RESERVED).first()
