"""API shapes: plain input serializers (shape only; the services validate meaning) and outputs."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.fields import empty

from tasks.display import read_stored
from tasks.exceptions import ReservationError
from tasks.mail import available_templates
from tasks.models import Delivery, Task
from tasks.recipients import label_of
from tasks.validation import aware_in_zone, ensure_offset_text


class LocalDateTimeField(serializers.DateTimeField):
    """ISO 8601 with the form's rules (tasks.validation.aware_in_zone): a time without an offset is read in
    the user's zone and refused if it does not exist or happens twice there; offsets beyond ±14:00 or with
    minutes of 60 or more are refused, not rounded."""

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str):
            self._checked(ensure_offset_text, value)
        return super().to_internal_value(value)

    def enforce_timezone(self, value: datetime) -> datetime:
        return self._checked(aware_in_zone, value)

    @staticmethod
    def _checked(check: Any, value: Any) -> Any:
        try:
            return check(value)
        except ReservationError as exc:
            raise serializers.ValidationError(exc.message, code=exc.code) from None


@extend_schema_field(OpenApiTypes.STR)
class RecipientLabelField(serializers.Field):
    """A stored recipient as text: ``address`` or ``Name <address>`` (what the create endpoint accepts)."""

    def to_representation(self, value: Any) -> str:
        return label_of(value)


@extend_schema_field({"type": "object", "additionalProperties": {}, "nullable": True})
class StoredContextField(serializers.Field):
    """The task's context. Read from its stored text where the selector gives it (``context_text``), so a row
    stored before the input limits, too deep to decode safely, is ``null`` instead of an error."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value: Any) -> Any:
        text = getattr(value, "context_text", None)
        return value.context if text is None else read_stored(text)


class TextField(serializers.CharField):
    """A CharField that takes text (or a finite number, as DRF does), never 1e400 read as infinity and kept as "inf"."""

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, float) and not math.isfinite(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class ClosedSerializer(serializers.Serializer):
    """An input serializer that refuses fields it does not know, naming each, instead of dropping them."""

    # Fields clients send by mistake, and what to do instead.
    unknown_hints: dict[str, Any] = {}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError(
                {name: [self.unknown_hints.get(name, _("Unknown field."))] for name in unknown}, code="unknown_field"
            )
        return attrs


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer that is not a field error: a message and a stable code."""

    detail = serializers.CharField()
    code = serializers.CharField()


class DeliveryOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = ["address", "status", "sent_at", "error"]
        read_only_fields = fields


class TaskOutputSerializer(serializers.ModelSerializer):
    recipients = serializers.ListField(child=RecipientLabelField(), read_only=True)
    context = StoredContextField()  # type: ignore[assignment]  # a field, not .context

    class Meta:
        model = Task
        fields = [
            "id",
            "description",
            "template",
            "recipients",
            "context",
            "status",
            "failed",
            "progress",
            "attempts",
            "queue",
            "reserved_at",
            "created_at",
            "started_at",
            "ended_at",
        ]
        read_only_fields = fields


class TaskCancelOutputSerializer(TaskOutputSerializer):
    """The task after a cancel, with ``detail`` saying what already went out."""

    detail = serializers.CharField(read_only=True)

    class Meta(TaskOutputSerializer.Meta):
        fields = [*TaskOutputSerializer.Meta.fields, "detail"]
        read_only_fields = fields


class TaskDetailOutputSerializer(TaskOutputSerializer):
    """One task with its log and what happened to each recipient."""

    deliveries = DeliveryOutputSerializer(many=True, read_only=True)

    class Meta(TaskOutputSerializer.Meta):
        fields = [*TaskOutputSerializer.Meta.fields, "log", "deliveries"]
        read_only_fields = fields


class QuerySerializer(serializers.Serializer):
    """Query parameters, strictly: ``?name=`` with nothing after it is an error, not "absent"."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        blank = [str(name) for name in self.fields if self.initial_data.get(name) == ""]
        if blank:
            raise serializers.ValidationError({name: [_("This field may not be blank.")] for name in blank})
        return attrs


class TaskListQuerySerializer(QuerySerializer):
    status = serializers.ChoiceField(choices=Task.Status.choices, required=False, help_text=_("Only tasks in it."))


class TaskCreateInputSerializer(ClosedSerializer):
    unknown_hints = {"reserved_at": _("Unknown field. To reserve the mail for later, use scheduled_at.")}

    template = serializers.ChoiceField(choices=(), help_text=_("One of the allow-listed mail templates."))
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=512),
        allow_empty=False,
        max_length=settings.TASK_MAX_RECIPIENTS,
        help_text=_(
            "E-mail addresses, each `address` or `Name <address>` (a name with a comma in quotes: "
            '`"Name, Jr." <address>`); duplicates are dropped. ASCII before the @ unless the server sends with '
            "SMTPUTF8 (EMAIL_SMTPUTF8); at most 64 bytes there and 254 in all."
        ),
    )
    context = serializers.DictField(  # type: ignore[assignment]  # a field, not .context
        required=False,
        default=dict,
        help_text=_(
            "Values the template uses: a JSON object with text keys, finite numbers, at most 8 levels deep "
            "and 16 KB as JSON."
        ),
    )
    description = TextField(max_length=200, help_text=_("Shown in the history and the notifications."))
    scheduled_at = LocalDateTimeField(
        required=False,
        allow_null=True,
        help_text=_(
            "When to send, ISO 8601. Without it the mail is sent now. A value without an offset is read in "
            "the user's time zone (refused if that local time does not exist or happens twice there); an "
            "offset must be within ±14:00."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [(name, name) for name in available_templates()]  # type: ignore[attr-defined]


class TaskEditInputSerializer(TaskCreateInputSerializer):
    """The PATCH body: any of the create body's fields (their definitions inherited), at least one.

    Fields it does not know are refused by name; ``scheduled_at`` may not be null (a reservation stays one).
    """

    unknown_hints = {
        **TaskCreateInputSerializer.unknown_hints,
        "status": _("Unknown field. To cancel, POST to the task's cancel/ endpoint."),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = empty
        self.fields["scheduled_at"].allow_null = False
        self.fields["scheduled_at"].help_text = _(
            "The new time, ISO 8601 (as when creating); the same time as now is no change."
        )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if not attrs:
            raise serializers.ValidationError(
                _("Give at least one of: %(fields)s.") % {"fields": ", ".join(self.fields)}, code="no_changes"
            )
        return attrs

    # Never partial, though it is a PATCH body: drf-spectacular sets ``partial`` for PATCH, which would only
    # rename the component (``Patched...``); every field is optional here anyway.
    @property
    def partial(self) -> bool:
        return False

    @partial.setter
    def partial(self, value: bool) -> None:
        pass
