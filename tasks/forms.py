"""The mail form: what a person types to send now or reserve for later."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from django import forms
from django.forms.fields import BaseTemporalField
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tasks.compose import kept_text_of, read_csv
from tasks.csv_import import CsvImport
from tasks.exceptions import ReservationError
from tasks.mail import available_templates, template_variables
from tasks.models import Task
from tasks.recipients import label_of, split_list
from tasks.services import ReservationChanges
from tasks.submissions import new_submission
from tasks.validation import CONTEXT_MAX_DEPTH, aware_in_zone, ensure_time_of_day

CONTEXT_PREFIX = "ctx_"
# Labels of the context names our templates use; any other name is shown as written.
CONTEXT_LABELS = {
    "name": _("Name"),
    "site_name": _("Site name"),
    "message": _("Message"),
    "title": _("Title"),
    "when": _("When"),
    "body": _("Body"),
}


LOCAL_INPUT_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]


class LocalDateTimeField(forms.DateTimeField):
    """A time typed in the user's zone, read by tasks.validation.aware_in_zone (as the API reads one):
    a local time that does not exist or happens twice there is refused with a message saying which."""

    def to_python(self, value: Any) -> datetime | None:  # type: ignore[override]
        if value in self.empty_values:
            return None
        try:
            if isinstance(value, str):
                ensure_time_of_day(value)  # Django reads a date alone as midnight
            parsed = value if isinstance(value, datetime) else BaseTemporalField.to_python(self, value)
            if not isinstance(parsed, datetime):  # a date-only value from a subclass's formats
                raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
            return aware_in_zone(parsed)
        except ReservationError as exc:
            raise forms.ValidationError(exc.message, code=exc.code) from None


def template_context_names() -> dict[str, tuple[str, ...]]:
    """Map each allow-listed template to the context names it reads (for the form and its script)."""
    return {name: template_variables(name) for name in available_templates()}


class MailForm(forms.Form):
    recipients = forms.CharField(
        label=_("Recipients"),
        required=False,  # or a CSV file: clean() asks for one of the two
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "alice@example.com, bob@example.com"}),
        help_text=_(
            "One or more addresses, separated by commas or new lines. Write “Name <address>” to greet someone by name."
        ),
    )
    template = forms.ChoiceField(label=_("Template"), choices=())
    description = forms.CharField(
        label=_("Description"),
        max_length=200,
        help_text=_("For you: it names this send in the task list and the history."),
    )
    context = forms.CharField(
        label=_("More context (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": '{"name": "Alice"}'}),
        help_text=_("Optional. Values typed in the fields above take precedence."),
    )
    reserve = forms.BooleanField(label=_("Reserve for later"), required=False)
    scheduled_at = LocalDateTimeField(
        label=_("Send at"),
        required=False,
        input_formats=LOCAL_INPUT_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60}, format="%Y-%m-%dT%H:%M"),
    )

    recipients_file = forms.FileField(
        label=_("Recipients from a spreadsheet (CSV)"),
        required=False,
        help_text=_(
            "An “email” column, optionally “name”; every other column is a field of that recipient's own. "
            "UTF-8 or CP949/EUC-KR (Excel's Korean CSV)."
        ),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    # Names this filled-in form, so that sending it twice sends once (tasks.submissions).
    submission = forms.CharField(required=False, max_length=32, widget=forms.HiddenInput)
    # The decoded text of an accepted upload, sent back with the page, so the file is not uploaded twice.
    recipients_csv = forms.CharField(required=False, widget=forms.HiddenInput)
    preview_recipient = forms.CharField(
        label=_("Preview and test for"),
        required=False,
        max_length=512,
        help_text=_("One of the recipients; left empty, the first."),
    )

    # Set by clean(): the recipients file of this submission, and whether it was uploaded just now.
    csv_import: CsvImport | None = None
    csv_is_new = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.initial.get("submission"):  # an empty form (or one re-shown from initial data): a new one
            self.initial["submission"] = new_submission()
        names = template_context_names()
        cast(forms.ChoiceField, self.fields["template"]).choices = [(name, name) for name in names]
        users: dict[str, list[str]] = {}
        for template, variables in names.items():
            for variable in variables:
                users.setdefault(variable, []).append(template)
        for variable, templates in users.items():
            self.fields[CONTEXT_PREFIX + variable] = forms.CharField(
                label=CONTEXT_LABELS.get(variable, variable),
                required=False,
                max_length=2000,
                widget=forms.TextInput(attrs={"data-templates": " ".join(templates)}),
            )
        # The picker offers minutes from now on, in the user's own zone (the middleware's).
        local = timezone.localtime()
        self.fields["scheduled_at"].help_text = _("In your time zone, %(zone)s (UTC%(offset)s).") % {
            "zone": timezone.get_current_timezone_name(),
            "offset": local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:],
        }
        self.fields["scheduled_at"].widget.attrs.update(
            min=local.strftime("%Y-%m-%dT%H:%M"), **{"data-time-zone": timezone.get_current_timezone_name()}
        )

    def context_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(CONTEXT_PREFIX)]

    def clean_context(self) -> dict[str, Any]:
        raw = (self.cleaned_data.get("context") or "").strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except RecursionError:  # nested deeper than the parser's stack allows; the limit is far lower anyway
            raise forms.ValidationError(
                _("The context nests too deeply: at most %(depth)d levels of objects and lists.")
                % {"depth": CONTEXT_MAX_DEPTH}
            ) from None
        except ValueError:  # malformed, or an integer too long to read
            raise forms.ValidationError(_('Enter a JSON object, e.g. {"name": "Alice"}.')) from None
        if not isinstance(value, dict):
            raise forms.ValidationError(_('Enter a JSON object, e.g. {"name": "Alice"}.'))
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        variables = template_variables(cleaned["template"]) if cleaned.get("template") else ()
        typed = {v: cleaned.get(CONTEXT_PREFIX + v, "").strip() for v in variables}
        cleaned["context"] = {**(cleaned.get("context") or {}), **{k: v for k, v in typed.items() if v}}
        self._clean_recipient_sources(cleaned)
        if cleaned.get("reserve") and "scheduled_at" not in self.errors:
            due = cleaned.get("scheduled_at")
            if not due:
                self.add_error("scheduled_at", _("Choose when to send the mail."))
            elif due <= timezone.now():
                self.add_error("scheduled_at", _("This time has already passed. Choose a time in the future."))
        return cleaned

    def _clean_recipient_sources(self, cleaned: dict[str, Any]) -> None:
        """The recipients typed plus those of the CSV file (a new upload or the one kept from before)."""
        upload = cleaned.get("recipients_file")
        self.csv_is_new = bool(upload)
        self.csv_import = read_csv(upload or None, cleaned.get("recipients_csv") or "")
        typed = cleaned.get("recipients") or ""
        if self.csv_import is None:
            if "recipients" not in self.errors and not typed.strip():
                self.add_error("recipients", self.fields["recipients"].error_messages["required"])
            return
        if self.csv_import.errors:
            field = "recipients_file" if upload else "recipients"
            for line in self.csv_import.error_lines():
                self.add_error(field, line)
            cleaned["recipients_csv"] = ""
            self.data = self.data.copy()  # type: ignore[attr-defined]
            self.data["recipients_csv"] = ""  # type: ignore[index]
            return
        if upload:
            cleaned["recipients_csv"] = kept_text_of(self.csv_import, upload)
            self.data = self.data.copy()  # type: ignore[attr-defined]
            self.data["recipients_csv"] = cleaned["recipients_csv"]  # type: ignore[index]
        cleaned["recipients"] = (*split_list(typed), *self.csv_import.recipients())


class RescheduleForm(forms.Form):
    scheduled_at = LocalDateTimeField(
        label=_("New time"),
        input_formats=LOCAL_INPUT_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60}, format="%Y-%m-%dT%H:%M"),
        error_messages={"required": _("Choose when to send the mail.")},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["scheduled_at"].widget.attrs["min"] = timezone.localtime().strftime("%Y-%m-%dT%H:%M")

    def clean_scheduled_at(self) -> Any:
        due = self.cleaned_data["scheduled_at"]
        if due <= timezone.now():
            raise forms.ValidationError(_("This time has already passed. Choose a time in the future."))
        return due


def _initial_of(task: Task) -> dict[str, Any]:
    """The edit form's values for ``task``: its own fields typed back, the context split as the mail form splits it.

    Text values of the names the task's template reads go to their fields; the rest goes to the JSON box.
    """
    context = dict(task.context or {})
    typed = {
        CONTEXT_PREFIX + name: context.pop(name)
        for name in template_variables(task.template)
        if isinstance(context.get(name), str)
    }
    due = timezone.localtime(task.reserved_at).replace(second=0, microsecond=0) if task.reserved_at else None
    return {
        "recipients": "\n".join(label_of(entry) for entry in task.recipients),
        "template": task.template,
        "description": task.description,
        "context": json.dumps(context, ensure_ascii=False) if context else "",
        "scheduled_at": due,
        **typed,
    }


class ReservationEditForm(MailForm):
    """The mail form for a reservation that has not left yet: the same fields and checks, prefilled from the task.

    ``changes()`` says what to hand to the service: the recipients only if their text was changed (so
    per-recipient data of the ones kept as they were is not lost), the time only if another minute was chosen.
    """

    def __init__(self, *args: Any, task: Task, **kwargs: Any) -> None:
        self.shown = _initial_of(task)
        kwargs.setdefault("initial", self.shown)
        super().__init__(*args, **kwargs)
        del self.fields["reserve"]
        self.fields["scheduled_at"].required = True
        self.fields["scheduled_at"].error_messages["required"] = _("Choose when to send the mail.")

    def clean_scheduled_at(self) -> datetime | None:
        due = self.cleaned_data.get("scheduled_at")
        if due is None or due == self.shown["scheduled_at"]:
            return None  # unchanged: the task keeps its exact time
        if due <= timezone.now():
            raise forms.ValidationError(_("This time has already passed. Choose a time in the future."))
        return due

    def changes(self) -> ReservationChanges:
        data = self.cleaned_data
        typed = data["recipients"]  # the text, or the entries with a CSV file's (MailForm.clean)
        # Compared entry by entry, not as text: a browser sends a textarea's line breaks as CRLF.
        entries = list(typed) if isinstance(typed, tuple) else split_list(typed)
        kept = entries == split_list(self.shown["recipients"])
        return ReservationChanges(
            recipients=None if kept else typed,
            template=data["template"],
            context=data["context"],
            description=data["description"],
            scheduled_at=data["scheduled_at"],
        )
