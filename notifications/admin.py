"""Notification rows, read-only: they are written by the services only."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from notifications.models import Notification
from reservemail import admin_base


@admin.register(Notification)
class NotificationAdmin(admin_base.ModelAdmin):
    list_display = ["owner", "name", "timestamp", "created_at"]
    list_filter = ["name"]
    list_select_related = ["owner"]
    search_fields = ["owner__username", "name"]
    fields = readonly_fields = ("owner", "name", "timestamp", "created_at", "payload_json")

    @admin.display(description=_("payload"))
    def payload_json(self, obj: Notification) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
