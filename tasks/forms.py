"""The mail form: what a person types to send now or reserve for later."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tasks.mail import available_templates


class MailForm(forms.Form):
    recipients = forms.CharField(
        label=_("Recipients"),
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "alice@example.com, bob@example.com"}),
        help_text=_("One or more addresses, separated by commas or new lines."),
    )
    template = forms.ChoiceField(label=_("Template"), choices=())
    description = forms.CharField(label=_("Description"), max_length=200)
    context = forms.CharField(
        label=_("Context (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"name": "Alice"}'}),
    )
    reserve = forms.BooleanField(label=_("Reserve for later"), required=False)
    scheduled_at = forms.DateTimeField(
        label=_("Send at"),
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [(name, name) for name in available_templates()]
        now = timezone.localtime()
        self.fields["scheduled_at"].widget.attrs["min"] = now.strftime("%Y-%m-%dT%H:%M")

    def clean_context(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("context") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            raise forms.ValidationError(_('Enter a JSON object, e.g. {"name": "Alice"}.')) from None
        if not isinstance(value, dict):
            raise forms.ValidationError(_('Enter a JSON object, e.g. {"name": "Alice"}.'))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("reserve") and not cleaned.get("scheduled_at") and "scheduled_at" not in self.errors:
            self.add_error("scheduled_at", _("Choose when to send the mail."))
        return cleaned
