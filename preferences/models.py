"""What a user chose for themselves: for now, the time zone their pages and forms use."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class UserPreference(models.Model):
    """One row per user who changed a default; no row means every default applies."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="preference"
    )
    # An IANA name ("Asia/Seoul"); empty means the site's TIME_ZONE.
    time_zone = models.CharField(_("time zone"), max_length=64, blank=True, default="")
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("user preference")
        verbose_name_plural = _("user preferences")

    def __str__(self) -> str:
        return f"preferences of {self.user_id}"
