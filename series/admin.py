"""Series admin: read-only state, actions that call the series services one row at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from reservemail import admin_base
from reservemail.exceptions import ReservemailError
from series import services
from series.exceptions import RuleError
from series.models import Series
from series.rules import parse_rule, summarize
from tasks.display import log_in_zone


@admin.register(Series)
class SeriesAdmin(admin_base.ModelAdmin):
    list_display = ["id", "description", "status", "owner", "summary", "next_at", "created_count"]
    list_display_links = ["id", "description"]
    list_filter = ["status", "zone", ("next_at", admin.DateFieldListFilter)]
    list_select_related = ["owner"]
    search_fields = ["description", "owner__username", "rule"]
    fields = readonly_fields = (
        "owner",
        "description",
        "template",
        "recipients",
        "context",
        "rule",
        "summary",
        "zone",
        "start_at",
        "status",
        "next_at",
        "last_at",
        "next_task_pk",
        "created_count",
        "created_at",
        "log_lines",
    )
    actions = ["pause_selected", "resume_selected", "skip_selected", "end_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a series is created from the mail form or the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # ending it is the way to stop it; its occurrences stay in the history

    @admin.display(description=gettext_lazy("rule in words"))
    def summary(self, obj: Series) -> str:
        try:
            return summarize(parse_rule(obj.rule), start=obj.start_at, zone_name=obj.zone)
        except RuleError:
            return obj.rule

    @admin.display(description=gettext_lazy("log"))
    def log_lines(self, obj: Series) -> str:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', log_in_zone(obj.log) or "-")

    def _each(self, request: HttpRequest, queryset: QuerySet[Series], service: Callable[..., Any]) -> None:
        done, errors = 0, []
        for series_id in queryset.values_list("pk", flat=True):
            try:
                service(owner=None, series_id=series_id)
                done += 1
            except ReservemailError as exc:
                errors.append(f"#{series_id}: {exc}")
        self.message_user(request, _("Done for %(count)d series.") % {"count": done}, messages.SUCCESS)
        if errors:
            self.message_user(request, "; ".join(errors), messages.WARNING)

    @admin.action(description=gettext_lazy("Pause selected series"), permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Series]) -> None:
        self._each(request, queryset, services.pause_series)

    @admin.action(description=gettext_lazy("Resume selected series"), permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Series]) -> None:
        self._each(request, queryset, services.resume_series)

    @admin.action(description=gettext_lazy("Skip the next occurrence of selected series"), permissions=["change"])
    def skip_selected(self, request: HttpRequest, queryset: QuerySet[Series]) -> None:
        self._each(request, queryset, services.skip_series)

    @admin.action(description=gettext_lazy("End selected series"), permissions=["change"])
    def end_selected(self, request: HttpRequest, queryset: QuerySet[Series]) -> None:
        self._each(request, queryset, services.end_series)
