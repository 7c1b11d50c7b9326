"""The OpenAPI documentation of the compose endpoints (preview, test send), kept out of tasks.api's body."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample
from rest_framework import serializers

from reservemail.api_schema import api_responses
from tasks.serializers import (
    PreviewOutputSerializer,
    RecipientInputField,
    TaskOutputSerializer,
    TaskPreviewInputSerializer,
    TaskTestInputSerializer,
)
from tasks.validation import MAX_NAME_LENGTH

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema


class RecipientSerializer(serializers.Serializer):
    """A recipient with a display name (into `To:`) and values of its own, merged over the shared context for
    this recipient only. No other keys."""

    address = serializers.CharField(max_length=254, help_text="The e-mail address.")
    name = serializers.CharField(max_length=MAX_NAME_LENGTH, required=False, help_text="The display name.")
    context = serializers.DictField(required=False, help_text="This recipient's own values.")  # type: ignore[assignment]

    class Meta:
        ref_name = "Recipient"


class RecipientFieldScheme(OpenApiSerializerFieldExtension):
    """A recipient in the schema: one of a string (``address`` or ``Name <address>``) or a Recipient object."""

    target_class = RecipientInputField
    match_subclasses = True  # the output field (RecipientOutputField) gives back the same shapes

    def map_serializer_field(self, auto_schema: AutoSchema, direction: Any) -> dict[str, Any]:
        component = auto_schema.resolve_serializer(RecipientSerializer, direction)
        text = {"type": "string", "maxLength": 512, "description": "`address` or `Name <address>`"}
        return {"oneOf": [text, component.ref]}


OBJECT_RECIPIENTS = {
    "template": "welcome",
    "recipients": [
        {"address": "kim@example.com", "name": "Kim Minjun", "context": {"name": "Minjun"}},
        "Lee <lee@example.com>",
    ],
    "context": {"site_name": "Hanbit"},
    "description": "Welcome, spring class",
    "recipient": "kim@example.com",
}

PREVIEW_SCHEMA: dict[str, Any] = {
    "summary": "Preview one recipient's copy",
    "description": "Takes the create body (plus `recipient`, by default the first) and answers the subject, "
    "text and HTML that recipient would get, rendered as the worker renders them (their own context over the "
    "shared one; a bulk template's unsubscribe link). Invalid input is refused as a create would refuse it. "
    "Creates nothing: no task, no delivery, no queue job.",
    "request": TaskPreviewInputSerializer,
    **api_responses({200: PreviewOutputSerializer}, errors=[400, 401, 403, 415]),
    "examples": [
        OpenApiExample("Preview", request_only=True, value=OBJECT_RECIPIENTS),
        OpenApiExample(
            "Rendered",
            response_only=True,
            status_codes=["200"],
            value={
                "recipient": "Kim Minjun <kim@example.com>",
                "subject": "Welcome to Hanbit, Minjun",
                "text": "Hello Minjun,\n\nWelcome to Hanbit. We are glad you are here.\n\n-- \nHanbit\n",
                "html": "<!doctype html>\n<html><body>\n<p>Hello Minjun,</p>\n...",
            },
        ),
    ],
}


def testmail_schema(*, parameters: list[Any]) -> dict[str, Any]:
    """The test endpoint's documentation; ``parameters`` are its request headers (Idempotency-Key)."""
    return {
        **_TEST_SCHEMA,
        **api_responses(
            {201: TaskOutputSerializer},
            errors=[400, 401, 403, 415, 422, 429, 503],
            idempotent=True,
            parameters=parameters,
        ),
    }


_TEST_SCHEMA: dict[str, Any] = {
    "summary": "Send a test to yourself",
    "description": "Sends the copy of `recipient` (by default the first) once, now, to your own account's "
    "address, its subject starting with a marker (`[TEST] `). It is a task of its own (`is_test: true`, status "
    "`queued`) in your history and counts against API_DAILY_SEND_QUOTA. 400 with code `no_email` when your "
    "account has no e-mail address. `scheduled_at` is ignored.",
    "request": TaskTestInputSerializer,
    "examples": [OpenApiExample("Test", request_only=True, value=OBJECT_RECIPIENTS)],
}
