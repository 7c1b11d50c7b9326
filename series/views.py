"""The series pages (list, one series with its occurrences and controls) and the repeat preview; thin."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from reservemail.exceptions import ReservemailError
from reservemail.http import AuthedRequest, found_or_404
from series import services
from series.exceptions import RuleError, SeriesNotFoundError
from series.forms import RepeatForm, SeriesChangeForm
from series.selectors import get_series_of, list_series_of, occurrences_of

OCCURRENCES_SHOWN = 50
CONTROLS: dict[str, Callable[..., services.Outcome]] = {
    "pause": services.pause_series,
    "resume": services.resume_series,
    "skip": services.skip_series,
    "end": services.end_series,
}


@login_required
def series_list(request: AuthedRequest) -> HttpResponse:
    return render(request, "series/list.html", {"series_list": list_series_of(request.user)[:200]})


@login_required
def series_detail(request: AuthedRequest, series_id: int) -> HttpResponse:
    series = found_or_404(get_series_of, request.user, series_id)
    try:
        summary = services.preview_rule(rule=series.rule, zone=series.zone, start_at=series.start_at)
    except RuleError:
        summary = None
    context = {
        "series": series,
        "preview": summary,
        "occurrences": occurrences_of(series.pk)[:OCCURRENCES_SHOWN],
        "change_form": SeriesChangeForm(initial={"rule": series.rule, "zone": series.zone}),
    }
    return render(request, "series/detail.html", context)


@require_POST
@login_required
def series_control(request: AuthedRequest, series_id: int, action: str) -> HttpResponse:
    try:
        if action == "change":
            form = SeriesChangeForm(request.POST)
            if not form.is_valid():
                raise RuleError(_("Enter a rule and a time zone."))
            services.change_series(owner=request.user, series_id=series_id, **form.cleaned_data)
            messages.success(request, _("Series #%(id)s changed.") % {"id": series_id})
        elif action in CONTROLS:
            messages.success(request, CONTROLS[action](owner=request.user, series_id=series_id).message)
        else:
            raise Http404
    except SeriesNotFoundError as exc:
        raise Http404(str(exc)) from exc
    except ReservemailError as exc:
        messages.error(request, exc.message)
    return redirect("series:detail", series_id=series_id)


@require_GET
@login_required
def preview(request: AuthedRequest) -> JsonResponse:
    """The repeat section's rule in words and its next five dates, in the user's zone, before saving."""
    form = RepeatForm(request.GET, prefix="repeat")
    if not form.is_valid():
        errors = [str(e) for field in form.errors.values() for e in field]
        return JsonResponse({"ok": False, "error": " ".join(errors)})
    if not form.rule:
        return JsonResponse({"ok": True, "rule": "", "summary": "", "upcoming": []})
    zone = timezone.get_current_timezone_name()
    try:
        shown = services.preview_rule(rule=form.rule, zone=zone, start_at=timezone.now())
    except RuleError as exc:
        return JsonResponse({"ok": False, "error": exc.message})
    dates = [formats.date_format(timezone.localtime(at), "Y-m-d (D) H:i") for at in shown.upcoming]
    return JsonResponse({"ok": True, "rule": shown.rule, "summary": shown.summary, "upcoming": dates})
