"""Per-user notification rows: one per (owner, name), holding a JSON payload merged by name."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


def empty_payload() -> dict:
    return {"data": []}


class Notification(models.Model):
    """The latest state of one kind of notice (``task_progress``, ``task_reserve``, ...) for a user."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications", verbose_name=_("owner")
    )
    name = models.CharField(_("name"), max_length=64)
    payload = models.JSONField(_("payload"), default=empty_payload)
    timestamp = models.FloatField(_("timestamp"), default=0.0, db_index=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="notification_one_per_owner_name")]
        indexes = [models.Index(fields=["owner", "timestamp"], name="notification_owner_ts")]

    def __str__(self) -> str:
        return f"{self.name} of {self.owner_id}"
