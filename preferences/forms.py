"""The settings form."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from preferences.selectors import available_time_zones


class PreferenceForm(forms.Form):
    time_zone = forms.ChoiceField(label=_("Time zone"), required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        default = _("Site default (%(zone)s)") % {"zone": settings.TIME_ZONE}
        field = cast(forms.ChoiceField, self.fields["time_zone"])
        field.choices = [("", default), *((name, name) for name in available_time_zones())]
        field.help_text = _("Reservation times are entered and shown in this zone.")
