"""The mail form's "Repeat" section (a form of its own, prefix ``repeat``) and the series page's change form."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from reservemail.zones import zone_names
from series.exceptions import RuleError
from series.models import Series
from series.rules import DAY_CODES, parse_rule
from tasks.forms import LOCAL_INPUT_FORMATS, LocalDateTimeField

KINDS = [
    ("none", _("Does not repeat")),
    ("daily", _("Every day")),
    ("weekly", _("Every week on chosen days")),
    ("monthly", _("Every month on a day")),
    ("advanced", _("Advanced (RRULE)")),
]
ENDS = [("never", _("Never")), ("after", _("After a number of times")), ("on", _("On a date"))]
WEEKDAY_CHOICES = list(
    zip(DAY_CODES, [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")], strict=True)
)


class RepeatForm(forms.Form):
    """How often the mail repeats; ``rule`` (after is_valid) is its RRULE text, or "" for a single send."""

    kind = forms.ChoiceField(
        label=_("How often"), choices=KINDS, initial="none", required=False, widget=forms.RadioSelect
    )
    at_time = forms.TimeField(
        label=_("At"), required=False, widget=forms.TimeInput(attrs={"type": "time"}, format="%H:%M")
    )
    weekdays = forms.MultipleChoiceField(
        label=_("On"), choices=WEEKDAY_CHOICES, required=False, widget=forms.CheckboxSelectMultiple
    )
    monthday = forms.IntegerField(
        label=_("Day of the month"),
        required=False,
        min_value=-1,
        max_value=31,
        help_text=_("1 to 31 (months without that day are skipped), or -1 for the last day."),
    )
    advanced = forms.CharField(
        label=_("Rule (RRULE)"),
        required=False,
        max_length=500,
        help_text=_("For example FREQ=MONTHLY;BYDAY=1MO;BYHOUR=9;BYMINUTE=0"),
    )
    ends = forms.ChoiceField(label=_("Ends"), choices=ENDS, initial="never", required=False, widget=forms.RadioSelect)
    count = forms.IntegerField(label=_("Times"), required=False, min_value=1, max_value=10_000)
    until = forms.DateField(label=_("Last date"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind") or "none"
        self.rule = ""
        if kind == "none" or self.errors:
            return data
        try:
            self.rule = parse_rule(self._rule_text(kind, data)).text
        except RuleError as exc:
            self.add_error("advanced" if kind == "advanced" else None, exc.message)
        return data

    def _rule_text(self, kind: str, data: dict[str, Any]) -> str:
        if kind == "advanced":
            return data.get("advanced") or ""
        parts = [f"FREQ={kind.upper()}"]
        if kind == "weekly":
            if not data.get("weekdays"):
                raise RuleError(str(_("Choose at least one day of the week.")))
            parts.append("BYDAY=" + ",".join(data["weekdays"]))
        if kind == "monthly":
            if data.get("monthday") in (None, 0):
                raise RuleError(str(_("Enter the day of the month.")))
            parts.append(f"BYMONTHDAY={data['monthday']}")
        if data.get("at_time") is not None:
            parts.append(f"BYHOUR={data['at_time'].hour};BYMINUTE={data['at_time'].minute}")
        if data.get("ends") == "after":
            if not data.get("count"):
                raise RuleError(str(_("Enter how many times.")))
            parts.append(f"COUNT={data['count']}")
        elif data.get("ends") == "on":
            if not data.get("until"):
                raise RuleError(str(_("Enter the last date.")))
            parts.append(f"UNTIL={data['until'].strftime('%Y%m%d')}")
        return ";".join(parts)


class SeriesChangeForm(forms.Form):
    """The series page's form: its description, rule, zone and start, prefilled from the series.

    ``changes()`` is what to hand to change_series (the API's PATCH): only the fields typed differently
    from what the page showed, the start compared to the minute, so a series started at 09:00:37 keeps
    its seconds when only its description is changed.
    """

    description = forms.CharField(
        label=_("Description"),
        max_length=200,
        help_text=_("For you: it names this send in the task list and the history."),
    )
    rule = forms.CharField(label=_("Rule (RRULE)"), max_length=500)
    zone = forms.ChoiceField(label=_("Time zone"))
    start_at = LocalDateTimeField(
        label=_("Start"),
        input_formats=LOCAL_INPUT_FORMATS,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60}, format="%Y-%m-%dT%H:%M"),
    )

    def __init__(self, *args: Any, series: Series, **kwargs: Any) -> None:
        self.shown: dict[str, Any] = {
            "description": series.description,
            "rule": series.rule,
            "zone": series.zone,
            "start_at": timezone.localtime(series.start_at).replace(second=0, microsecond=0),
        }
        kwargs.setdefault("initial", self.shown)
        super().__init__(*args, **kwargs)
        names = zone_names()
        kept = () if series.zone in names else (series.zone,)  # a zone this machine's tzdata has since dropped
        cast(forms.ChoiceField, self.fields["zone"]).choices = [(name, name) for name in (*kept, *names)]
        local = timezone.localtime()
        where = _("In your time zone, %(zone)s (UTC%(offset)s).") % {
            "zone": timezone.get_current_timezone_name(),
            "offset": local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:],
        }
        self.fields["start_at"].help_text = f"{_('Where the rule starts counting.')} {where}"

    def changes(self) -> dict[str, Any]:
        """The cleaned values that differ from the shown ones (empty: nothing to change)."""
        return {name: value for name, value in self.cleaned_data.items() if value != self.shown[name]}
