"""A Series: one mail sent again and again by a recurrence rule; each occurrence is an ordinary Task."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Series(models.Model):
    """The mail, its rule (RFC 5545 subset, series.rules) read in ``zone`` from ``start_at``, and its position.

    ``last_at`` is the time of the latest occurrence that is behind the series (claimed by a worker,
    skipped, missed or canceled), so the next one is always computed strictly after it; ``next_at``
    is the next occurrence's time (None once ended or while paused) and ``next_task_pk`` the task
    reserved for it (None if not yet reserved, e.g. beyond the reservation horizon). Only that
    next occurrence exists as a RESERVED task (tasks.Task.series; one at most, a constraint).
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        PAUSED = "paused", _("Paused")
        ENDED = "ended", _("Ended")

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="series")
    description = models.CharField(_("description"), max_length=200)
    template = models.CharField(_("template"), max_length=100)
    recipients = models.JSONField(_("recipients"), default=list)
    context = models.JSONField(_("context"), default=dict, blank=True)
    rule = models.CharField(_("rule"), max_length=500)
    zone = models.CharField(_("time zone"), max_length=64)
    start_at = models.DateTimeField(_("starts at"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    next_at = models.DateTimeField(_("next at"), null=True, blank=True)
    last_at = models.DateTimeField(_("last occurrence at"), null=True, blank=True)
    next_task_pk = models.BigIntegerField(_("next occurrence's task"), null=True, blank=True)
    created_count = models.PositiveIntegerField(_("occurrences created"), default=0)
    log = models.TextField(_("log"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("series")
        verbose_name_plural = _("series")
        indexes = [models.Index(fields=["status", "next_at"], name="series_status_next")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.description}"

    def status_in_sentence(self) -> str:
        """The status as a word inside a sentence ("Series #3 is paused and ..."); get_status_display is a label."""
        return str(STATUS_IN_SENTENCE[self.status])


STATUS_IN_SENTENCE: dict[str, Promise] = {
    Series.Status.ACTIVE: pgettext_lazy("status in a sentence", "active"),
    Series.Status.PAUSED: pgettext_lazy("status in a sentence", "paused"),
    Series.Status.ENDED: pgettext_lazy("status in a sentence", "ended"),
}
