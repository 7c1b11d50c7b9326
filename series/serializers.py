"""API shapes of a series: plain input serializers (shape only; the services validate meaning) and outputs."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from series.exceptions import RuleError
from series.models import Series
from series.rules import parse_rule, summarize
from tasks.serializers import (
    ClosedSerializer,
    LocalDateTimeField,
    RecipientOutputField,
    TaskCreateInputSerializer,
    TextField,
)

RULE_HELP = _(
    "An RFC 5545 RRULE (subset): FREQ (MINUTELY, HOURLY, DAILY, WEEKLY, MONTHLY, YEARLY), INTERVAL, BYDAY "
    "(MO..SU, with 1MO or -1FR in monthly rules), BYMONTHDAY (-1 is the last day), BYHOUR, BYMINUTE, and an end: "
    "COUNT or UNTIL. Read as wall-clock time in `zone`."
)


class SeriesCreateInputSerializer(TaskCreateInputSerializer):
    """The mail as for /api/tasks/, plus its rule, zone and start; never a ``scheduled_at``."""

    unknown_hints = {"scheduled_at": _("Unknown field. A series starts at start_at and repeats by its rule.")}

    scheduled_at = None  # type: ignore[assignment]
    rule = TextField(max_length=500, help_text=RULE_HELP)
    zone = TextField(max_length=64, required=False, help_text=_("IANA time zone the rule is read in; default: yours."))
    start_at = LocalDateTimeField(
        required=False, help_text=_("The first occurrence is the rule's first at or after this; default: now.")
    )


class SeriesChangeInputSerializer(ClosedSerializer):
    """The PATCH body: any of rule, zone, start and description."""

    rule = TextField(max_length=500, required=False, help_text=RULE_HELP)
    zone = TextField(max_length=64, required=False, help_text=_("IANA time zone the rule is read in."))
    start_at = LocalDateTimeField(required=False, help_text=_("Where the rule starts counting."))
    description = TextField(max_length=200, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if not attrs:
            raise serializers.ValidationError(_("Give at least one of rule, zone, start_at, description."))
        return attrs

    @property
    def partial(self) -> bool:  # never partial in the schema: drf-spectacular would make every field optional
        return False

    @partial.setter
    def partial(self, value: bool) -> None:
        pass


class SeriesOutputSerializer(serializers.ModelSerializer):
    recipients = serializers.ListField(child=RecipientOutputField(), read_only=True)
    summary = serializers.SerializerMethodField(help_text=_("The rule in plain language."))

    class Meta:
        model = Series
        fields = [
            "id",
            "description",
            "template",
            "recipients",
            "context",
            "rule",
            "zone",
            "summary",
            "start_at",
            "status",
            "next_at",
            "created_count",
            "created_at",
            "log",
        ]
        read_only_fields = fields

    def get_summary(self, series: Series) -> str:
        try:
            return summarize(parse_rule(series.rule), start=series.start_at, zone_name=series.zone)
        except RuleError:
            return series.rule


class SeriesActionOutputSerializer(SeriesOutputSerializer):
    detail = serializers.CharField(help_text=_("What the action did, in a sentence."))

    class Meta(SeriesOutputSerializer.Meta):
        fields = [*SeriesOutputSerializer.Meta.fields, "detail"]
        read_only_fields = fields
