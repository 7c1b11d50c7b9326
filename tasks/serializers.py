"""API shapes: plain input serializers (shape only; the services validate meaning) and outputs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from tasks.mail import available_templates
from tasks.models import Delivery, Task


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
    recipients = serializers.ListField(child=serializers.CharField(), read_only=True)
    context = serializers.DictField(read_only=True)  # type: ignore[assignment]  # a field, not .context

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


class TaskCreateInputSerializer(serializers.Serializer):
    template = serializers.ChoiceField(choices=(), help_text=_("One of the allow-listed mail templates."))
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=254),
        allow_empty=False,
        max_length=settings.TASK_MAX_RECIPIENTS,
        help_text=_("E-mail addresses; duplicates are dropped."),
    )
    context = serializers.DictField(  # type: ignore[assignment]  # a field, not .context
        required=False, default=dict, help_text=_("Values the template uses.")
    )
    description = serializers.CharField(max_length=200, help_text=_("Shown in the history and the notifications."))
    scheduled_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text=_(
            "When to send, ISO 8601. Without it the mail is sent now. A value without an offset is read in "
            "the user's time zone."
        ),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [(name, name) for name in available_templates()]  # type: ignore[attr-defined]


class TaskRescheduleInputSerializer(serializers.Serializer):
    scheduled_at = serializers.DateTimeField(
        help_text=_("The new time, ISO 8601; a value without an offset is read in the user's time zone.")
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError(
                {name: [_("Only scheduled_at can be changed.")] for name in unknown}, code="read_only"
            )
        return attrs
