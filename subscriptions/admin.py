"""The suppression list in the admin: visible, searchable, editable; every write goes through the services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from reservemail import admin_base
from subscriptions import services
from subscriptions.exceptions import SuppressionError
from subscriptions.models import Suppression


class SuppressionForm(forms.ModelForm):
    """Address and list; the address is compared lower-cased, as the send loop compares it."""

    class Meta:
        model = Suppression
        fields = ("address", "list_name")

    def clean_address(self) -> str:
        return self.cleaned_data["address"].strip().lower()

    def clean_list_name(self) -> str:
        return self.cleaned_data["list_name"].strip()


@admin.register(Suppression)
class SuppressionAdmin(admin_base.ModelAdmin):
    form = SuppressionForm
    list_display = ("address", "list_display_name", "how", "created_at")
    list_filter = ("how", "list_name")
    search_fields = ("address",)
    readonly_fields = ("how", "created_at")
    fields = ("address", "list_name", "how", "created_at")
    date_hierarchy = "created_at"

    @admin.display(description=gettext_lazy("list"), ordering="list_name")
    def list_display_name(self, obj: Suppression) -> str:
        return obj.list_label

    def save_model(self, request: HttpRequest, obj: Suppression, form: Any, change: bool) -> None:
        try:
            if change:
                saved = services.change_suppression(suppression_id=obj.pk, address=obj.address, list_name=obj.list_name)
            else:
                saved, created = services.suppress_address(
                    address=obj.address, list_name=obj.list_name, how=Suppression.How.ADMIN
                )
                if not created:
                    self.message_user(request, _("%(address)s was already suppressed.") % {"address": saved})
        except SuppressionError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            raise
        obj.pk, obj.how, obj.created_at = saved.pk, saved.how, saved.created_at
        obj.address, obj.list_name = saved.address, saved.list_name

    def delete_model(self, request: HttpRequest, obj: Suppression) -> None:
        services.remove_suppression(suppression_id=obj.pk)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Suppression]) -> None:
        for suppression_id in queryset.values_list("pk", flat=True):
            services.remove_suppression(suppression_id=suppression_id)
