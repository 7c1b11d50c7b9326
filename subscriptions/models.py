"""Suppression: an address that asked not to get a bulk list's mail (or any bulk mail) any more."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _

from reservemail.addresses import AddressField

# The list name of a suppression that covers every bulk list.
ALL_BULK = ""


class Suppression(models.Model):
    """One address suppressed for one bulk list (``list_name``) or for all bulk mail (``ALL_BULK``).

    Addresses are stored lower-cased (tasks compare them lower-cased); transactional mail never reads this table.
    """

    class How(models.TextChoices):
        ONE_CLICK = "one_click", _("One-click (mail client)")
        PAGE = "page", _("Unsubscribe page")
        ADMIN = "admin", _("Admin")
        API = "api", _("API")
        MAIL = "mail", _("Mail (mailto: link)")

    address = AddressField(_("address"), max_length=254)
    list_name = models.CharField(
        _("list"),
        max_length=100,
        blank=True,
        default=ALL_BULK,
        help_text=_("The bulk template's list (e.g. newsletter); empty for all bulk mail."),
    )
    how = models.CharField(_("how"), max_length=10, choices=How.choices)
    created_at = models.DateTimeField(_("when"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("suppression")
        verbose_name_plural = _("suppressions")
        constraints = [
            models.UniqueConstraint(fields=["address", "list_name"], name="suppression_one_per_address_list"),
            models.CheckConstraint(condition=models.Q(address=Lower("address")), name="suppression_address_lower"),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.list_label})"

    @property
    def list_label(self) -> str:
        return self.list_name or str(_("all bulk mail"))
