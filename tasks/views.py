"""The mail form, the task history and the task page; thin: parse, call one service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from reservemail.exceptions import ReservemailError
from reservemail.http import AuthedRequest, found_or_404
from reservemail.monitoring import may_monitor
from series.forms import RepeatForm
from series.services import create_series
from tasks import services
from tasks.compose import FORGET_CSV, preview_of, review_of, without_csv
from tasks.display import read_stored
from tasks.exceptions import TaskStateError, unreadable_context
from tasks.forms import MailForm, RescheduleForm, ReservationEditForm, template_context_names
from tasks.health import health_report
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.selectors import get_task_of, get_task_shown_of, list_deliveries_of, list_history_of, stored_context_of
from tasks.submissions import new_submission, send_once, send_test_from_form, told

HISTORY_PAGE_SIZE = 20
DELIVERIES_PAGE_SIZE = 100


def _when(task: Task) -> str:
    return formats.date_format(timezone.localtime(task.reserved_at), "Y-m-d H:i") if task.reserved_at else ""


@login_required
def mail_form(request: AuthedRequest) -> HttpResponse:
    """Send, reserve, preview or send a test. A CSV uploaded just now is shown for review, never sent at once."""
    action = request.POST.get("action", "send")
    if action == FORGET_CSV:  # the form again, as typed, without the file and without checking anything
        form = MailForm(initial=without_csv(request.POST))
    else:
        form = MailForm(request.POST or None, request.FILES or None)
    repeat = RepeatForm(request.POST or None, prefix="repeat")
    extra: dict[str, object] = {}
    if form.is_bound and form.is_valid() and repeat.is_valid():
        if action == "preview" or form.csv_is_new:
            extra["preview"] = preview_of(form)
            if form.csv_is_new and action != "preview":
                messages.info(request, _("Nothing was sent yet: check the recipients read from the file, then send."))
        elif action == "test":
            _send_test(request, form)
        elif done := _send(request, form, repeat):
            return done
    elif form.is_bound:
        messages.error(request, _not_done(action))
    if form.csv_import is not None and not form.csv_import.errors and form.is_bound:
        extra["csv_review"] = review_of(
            form.csv_import, template=form.data.get("template", ""), shared=form.cleaned_data.get("context") or {}
        )
    context = {
        "form": form,
        "repeat_form": repeat,
        "template_names": template_context_names(),
        "test_submission": new_submission(),  # new on every page shown: a click on it is a new test
        **extra,
    }
    return render(request, "tasks/mail_form.html", context)


def _not_done(action: str) -> str:
    if action == "preview":
        return _("Nothing to preview yet. Please correct the marked fields.")
    if action == "test":
        return _("The test was not sent. Please correct the marked fields.")
    return _("The mail was not sent. Please correct the marked fields.")


def _send(request: AuthedRequest, form: MailForm, repeat: RepeatForm) -> HttpResponse | None:
    """Send now, reserve, or start a series (the Repeat section); the page to go to, or None with the errors shown.

    Once per filled-in form (tasks.submissions): the twin of a POST already done makes nothing and
    says what the first one made.
    """
    try:
        outcome = send_once(
            user=request.user,
            submission=form.cleaned_data.get("submission") or "",
            data=request.POST,
            handler=lambda: _create(request, form, repeat),
        )
    except ReservemailError as exc:
        field = exc.field if exc.field in form.fields else None
        form.add_error(field, exc.message)
        messages.error(request, _("The mail was not sent. Please correct the marked fields."))
        return None
    made = outcome.body
    messages.add_message(request, *told(outcome, already=_("This form was already sent; nothing more was sent.")))
    if made["kind"] == "series":
        return redirect("series:detail", series_id=made["id"])
    return redirect("tasks:mail")


def _create(request: AuthedRequest, form: MailForm, repeat: RepeatForm) -> tuple[int, dict[str, object]]:
    """Create the send the form asks for; ``(201, what was made)``, as the idempotency store keeps it."""
    data = form.cleaned_data
    mail = MailSpec(template=data["template"], recipients=data["recipients"], context=data["context"])
    if repeat.rule:  # a series, its first occurrence reserved with it (series.services)
        series = create_series(
            owner=request.user,
            mail=mail,
            description=data["description"],
            rule=repeat.rule,
            zone=timezone.get_current_timezone_name(),
            start_at=(data["reserve"] and data["scheduled_at"]) or timezone.now(),
        )
        return 201, {"kind": "series", "id": series.pk, "message": _("Series #%(id)s created.") % {"id": series.pk}}
    if data["reserve"]:
        task = services.reserve_task(
            owner=request.user, scheduled_at=data["scheduled_at"], mail=mail, description=data["description"]
        )
        message = _("Mail #%(id)s reserved for %(when)s (%(zone)s).") % {
            "id": task.pk,
            "when": _when(task),
            "zone": timezone.get_current_timezone_name(),
        }
    else:
        task = services.enqueue_task(owner=request.user, mail=mail, description=data["description"])
        message = _("Mail #%(id)s is being sent.") % {"id": task.pk}
    return 201, {"kind": "task", "id": task.pk, "message": message}


def _send_test(request: AuthedRequest, form: MailForm) -> None:
    """A test to the signed-in user; the form stays filled in, so composing goes on.

    Once per page shown (tasks.submissions): the twin of a test POST already done sends nothing and
    says which test the first one made.
    """
    answer = send_test_from_form(form, user=request.user, post=request.POST)
    messages.add_message(request, answer.level, answer.text)


@login_required
def history(request: AuthedRequest) -> HttpResponse:
    page = Paginator(list_history_of(request.user), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "tasks/history.html", {"page": page})


@login_required
def detail(request: AuthedRequest, task_id: int) -> HttpResponse:
    task = found_or_404(get_task_shown_of, request.user, task_id)
    deliveries = Paginator(list_deliveries_of(task), DELIVERIES_PAGE_SIZE).get_page(request.GET.get("page"))
    form = RescheduleForm(initial={"scheduled_at": timezone.localtime(task.reserved_at)} if task.reserved_at else None)
    return render(request, "tasks/detail.html", {"task": task, "deliveries": deliveries, "reschedule_form": form})


@login_required
def edit(request: AuthedRequest, task_id: int) -> HttpResponse:
    """Edit a reservation with the mail form's fields, preview it or send a test of it; once it has left, say so."""
    task = found_or_404(get_task_of, request.user, task_id)
    if request.method != "POST" and task.status != Task.Status.RESERVED:  # a POST is told by the service
        messages.error(request, _("Mail #%(id)s can no longer be edited: it is %(status)s.") % _shown(task))
        return redirect("tasks:detail", task_id=task.pk)
    stored = stored_context_of(task)
    if stored is None:  # stored before the input limits: shown on its page, not typed back into a form
        messages.error(request, unreadable_context(task.pk).message)
        return redirect("tasks:detail", task_id=task.pk)
    task.context = stored  # the form types it back; decoded once, safely
    form = ReservationEditForm(request.POST or None, task=task)
    action = request.POST.get("action", "save")
    extra: dict[str, object] = {}
    if request.method == "POST" and not form.is_valid():
        messages.error(request, _not_saved(action, form))
    elif request.method == "POST" and action == "preview":  # as it would go out, edited: nothing is saved
        extra["preview"] = preview_of(form)
    elif request.method == "POST" and action == "test":
        _send_test(request, form)
    elif request.method == "POST" and (saved := _save(request, task, form)):
        return saved
    context = {
        "form": form,
        "task": task,
        "template_names": template_context_names(),
        "test_submission": new_submission(),
        **extra,
    }
    return render(request, "tasks/edit.html", context)


def _not_saved(action: str, form: ReservationEditForm) -> str:
    if action in ("preview", "test"):
        return _not_done(action)
    if set(form.errors) - {NON_FIELD_ERRORS}:
        return _("The reservation was not changed. Please correct the marked fields.")
    return _("The reservation was not changed.")


def _save(request: AuthedRequest, task: Task, form: ReservationEditForm) -> HttpResponse | None:
    """Save the edit through the service; the task's page, or None with the refusal on the form."""
    try:
        task = services.edit_reservation(owner=request.user, task_id=task.pk, changes=form.changes())
    except ReservemailError as exc:
        field = None if isinstance(exc, TaskStateError) or exc.field not in form.fields else exc.field
        form.add_error(field, exc.message)
        if field is None:  # the state (sent meanwhile) or the quota: the form says which, no field to mark
            messages.error(request, _("The reservation was not changed."))
        else:
            messages.error(request, _("The reservation was not changed. Please correct the marked fields."))
        return None
    messages.success(
        request,
        _("Mail #%(id)s saved; it will be sent at %(when)s (%(zone)s).")
        % {"id": task.pk, "when": _when(task), "zone": timezone.get_current_timezone_name()},
    )
    return redirect("tasks:detail", task_id=task.pk)


def _shown(task: Task) -> dict[str, object]:
    return {"id": task.pk, "status": task.status_in_sentence()}


@login_required
def delivery_copy(request: AuthedRequest, task_id: int, delivery_id: int) -> HttpResponse:
    """The copy one recipient got (or will get), rendered from the data its delivery keeps."""
    task = found_or_404(get_task_shown_of, request.user, task_id)
    delivery = list_deliveries_of(task).filter(pk=delivery_id).first()
    if delivery is None:
        raise Http404(_("No such recipient of this task."))
    shared = read_stored(getattr(task, "context_text", None))
    preview = None
    try:
        if not isinstance(shared, dict):
            raise ReservemailError(_("This task's context is nested too deeply to be shown."))
        preview = services.render_delivery(task=task, delivery=delivery, context=shared)
    except ReservemailError as exc:
        messages.error(request, exc.message)
    return render(request, "tasks/delivery_copy.html", {"task": task, "delivery": delivery, "preview": preview})


def _back(request: HttpRequest) -> HttpResponse:
    """Back to ``next`` if it is a path on this site, else to the mail page.

    A path only, sent as it is: ``redirect()`` would take a word without "/" or "." for a view's
    name and fail to reverse it (a 500 for ``next=-1``).
    """
    next_url = request.POST.get("next", "")
    if next_url.startswith("/") and url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(next_url)
    return redirect("tasks:mail")


@require_POST
@login_required
def cancel(request: AuthedRequest, task_id: int) -> HttpResponse:
    try:
        outcome = found_or_404(services.cancel_task, owner=request.user, task_id=task_id)
    except ReservemailError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, outcome.message)
    return _back(request)


@require_POST
@login_required
def reschedule(request: AuthedRequest, task_id: int) -> HttpResponse:
    found_or_404(get_task_of, request.user, task_id)  # another user's task is missing, whatever was posted
    form = RescheduleForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("scheduled_at", []):
            messages.error(request, str(error))
        return _back(request)
    try:
        due = form.cleaned_data["scheduled_at"]
        task = found_or_404(services.reschedule_task, owner=request.user, task_id=task_id, scheduled_at=due)
    except ReservemailError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Mail #%(id)s moved to %(when)s (%(zone)s).")
            % {"id": task.pk, "when": _when(task), "zone": timezone.get_current_timezone_name()},
        )
    return _back(request)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when all is well, 503 when something needs attention; the report itself for staff or METRICS_TOKEN.

    Anyone (a load balancer's probe) gets ``ok`` and the status code only: the details name hosts,
    workers, errors and the relay's answer, which are for operators.
    """
    report = health_report()
    status = 200 if report["ok"] else 503
    if not may_monitor(request):
        return JsonResponse({"ok": report["ok"], "time": report["time"]}, status=status)
    return JsonResponse(report, status=status)
