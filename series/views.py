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
from series.exceptions import RuleError
from series.forms import RepeatForm, SeriesChangeForm
from series.models import Series
from series.selectors import get_series_shown_of, list_series_of, occurrences_of, with_next_send

OCCURRENCES_SHOWN = 50
FORM_FIELD_OF = {"scheduled_at": "start_at"}  # the next occurrence's reservation errors name its time
CONTROLS: dict[str, Callable[..., services.Outcome]] = {
    "pause": services.pause_series,
    "resume": services.resume_series,
    "skip": services.skip_series,
    "end": services.end_series,
}


@login_required
def series_list(request: AuthedRequest) -> HttpResponse:
    shown = with_next_send(list_series_of(request.user))[:200]
    return render(request, "series/list.html", {"series_list": shown})


@login_required
def series_detail(request: AuthedRequest, series_id: int) -> HttpResponse:
    series = found_or_404(get_series_shown_of, request.user, series_id)
    return _page(request, series, SeriesChangeForm(series=series))


def _page(request: AuthedRequest, series: Series, change_form: SeriesChangeForm) -> HttpResponse:
    try:
        summary = services.preview_rule(rule=series.rule, zone=series.zone, start_at=series.start_at)
    except RuleError:
        summary = None
    context = {
        "series": series,
        "preview": summary,
        "occurrences": occurrences_of(series.pk)[:OCCURRENCES_SHOWN],
        "change_form": change_form,
    }
    return render(request, "series/detail.html", context)


@require_POST
@login_required
def series_change(request: AuthedRequest, series_id: int) -> HttpResponse:
    """Change the description, rule, zone or start through change_series (as the API's PATCH does).

    Input the form or the service refuses is shown on the form, next to its field; the service
    rolls everything back, so the series and its waiting occurrence stay as they were.
    """
    series = found_or_404(get_series_shown_of, request.user, series_id)
    form = SeriesChangeForm(request.POST, series=series)
    if form.is_valid():
        if not (changes := form.changes()):
            messages.info(request, _("Nothing was changed."))
            return redirect("series:detail", series_id=series.pk)
        try:
            changed = found_or_404(services.change_series, owner=request.user, series_id=series.pk, **changes)
        except ReservemailError as exc:
            if (field := _field_of(form, exc)) is None:  # the series' state or the quota: no field to mark
                messages.error(request, exc.message)
                # As it is now (ended in another tab: no change form), with what was typed kept otherwise.
                return _page(request, found_or_404(get_series_shown_of, request.user, series_id), form)
            form.add_error(field, exc.message)
        else:
            messages.success(request, _changed_message(changed))
            return redirect("series:detail", series_id=series.pk)
    messages.error(request, _("The series was not changed. Please correct the marked fields."))
    return _page(request, series, form)


def _field_of(form: SeriesChangeForm, exc: ReservemailError) -> str | None:
    """The form field an error of change_series belongs to; None for the form as a whole (quota, state)."""
    field = FORM_FIELD_OF.get(exc.field or "", exc.field)
    return field if field in form.fields else None


def _changed_message(series: Series) -> str:
    if series.status == Series.Status.ENDED:  # the new rule or start leaves no occurrence after now
        return _("Series #%(id)s changed; its rule has no more occurrences, so it ended.") % {"id": series.pk}
    return _("Series #%(id)s changed.") % {"id": series.pk}


@require_POST
@login_required
def series_control(request: AuthedRequest, series_id: int, action: str) -> HttpResponse:
    if action not in CONTROLS:
        raise Http404
    try:
        outcome = found_or_404(CONTROLS[action], owner=request.user, series_id=series_id)
    except ReservemailError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, outcome.message)
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
