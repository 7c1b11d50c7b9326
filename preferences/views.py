"""The settings page: thin, parse, call one service, redirect."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from preferences.forms import PreferenceForm
from preferences.selectors import get_time_zone_of
from preferences.services import set_time_zone
from reservemail.exceptions import ReservemailError
from reservemail.http import AuthedRequest
from reservemail.middleware import remember_time_zone


@login_required
def settings_page(request: AuthedRequest) -> HttpResponse:
    form = PreferenceForm(request.POST or None, initial={"time_zone": get_time_zone_of(request.user.pk)})
    if request.method == "POST" and form.is_valid():
        try:
            preference = set_time_zone(user=request.user, time_zone=form.cleaned_data["time_zone"])
        except ReservemailError as exc:
            form.add_error("time_zone", exc.message)
        else:
            remember_time_zone(request, preference.time_zone)
            messages.success(request, _("Your settings were saved."))
            return redirect("preferences:settings")
    return render(request, "preferences/settings.html", {"form": form})
