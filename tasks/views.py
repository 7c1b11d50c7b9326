"""The mail form, the task history and the task page; thin: parse, call one service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import formats, timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from reservemail.exceptions import ReservemailError
from reservemail.http import AuthedRequest
from series.forms import RepeatForm
from series.services import create_series
from tasks import services
from tasks.exceptions import TaskNotFoundError
from tasks.forms import MailForm, RescheduleForm, template_context_names
from tasks.health import health_report
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.selectors import get_task_shown_of, list_deliveries_of, list_history_of

HISTORY_PAGE_SIZE = 20
DELIVERIES_PAGE_SIZE = 100


def _when(task: Task) -> str:
    return formats.date_format(timezone.localtime(task.reserved_at), "Y-m-d H:i") if task.reserved_at else ""


@login_required
def mail_form(request: AuthedRequest) -> HttpResponse:
    form = MailForm(request.POST or None)
    repeat = RepeatForm(request.POST or None, prefix="repeat")
    if request.method == "POST" and form.is_valid() and repeat.is_valid():
        data = form.cleaned_data
        mail = MailSpec(template=data["template"], recipients=data["recipients"], context=data["context"])
        try:
            if repeat.rule:  # the Repeat section: a series, its first occurrence reserved (series.services)
                series = create_series(
                    owner=request.user,
                    mail=mail,
                    description=data["description"],
                    rule=repeat.rule,
                    zone=timezone.get_current_timezone_name(),
                    start_at=(data["reserve"] and data["scheduled_at"]) or timezone.now(),
                )
                messages.success(request, _("Series #%(id)s created.") % {"id": series.pk})
                return redirect("series:detail", series_id=series.pk)
            if data["reserve"]:
                task = services.reserve_task(
                    owner=request.user, scheduled_at=data["scheduled_at"], mail=mail, description=data["description"]
                )
                messages.success(
                    request,
                    _("Mail #%(id)s reserved for %(when)s (%(zone)s).")
                    % {"id": task.pk, "when": _when(task), "zone": timezone.get_current_timezone_name()},
                )
            else:
                task = services.enqueue_task(owner=request.user, mail=mail, description=data["description"])
                messages.success(request, _("Mail #%(id)s is being sent.") % {"id": task.pk})
        except ReservemailError as exc:
            field = exc.field if exc.field in form.fields else None
            form.add_error(field, exc.message)
            messages.error(request, _("The mail was not sent. Please correct the marked fields."))
        else:
            return redirect("tasks:mail")
    elif request.method == "POST":
        messages.error(request, _("The mail was not sent. Please correct the marked fields."))
    context = {"form": form, "repeat_form": repeat, "template_names": template_context_names()}
    return render(request, "tasks/mail_form.html", context)


@login_required
def history(request: AuthedRequest) -> HttpResponse:
    page = Paginator(list_history_of(request.user), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "tasks/history.html", {"page": page})


@login_required
def detail(request: AuthedRequest, task_id: int) -> HttpResponse:
    try:
        task = get_task_shown_of(request.user, task_id)
    except TaskNotFoundError as exc:
        raise Http404(str(exc)) from exc
    deliveries = Paginator(list_deliveries_of(task), DELIVERIES_PAGE_SIZE).get_page(request.GET.get("page"))
    form = RescheduleForm(initial={"scheduled_at": timezone.localtime(task.reserved_at)} if task.reserved_at else None)
    return render(request, "tasks/detail.html", {"task": task, "deliveries": deliveries, "reschedule_form": form})


def _back(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("tasks:mail")


@require_POST
@login_required
def cancel(request: AuthedRequest, task_id: int) -> HttpResponse:
    try:
        outcome = services.cancel_task(owner=request.user, task_id=task_id)
    except TaskNotFoundError as exc:
        raise Http404(str(exc)) from exc
    except ReservemailError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, outcome.message)
    return _back(request)


@require_POST
@login_required
def reschedule(request: AuthedRequest, task_id: int) -> HttpResponse:
    form = RescheduleForm(request.POST)
    if not form.is_valid():
        for error in form.errors.get("scheduled_at", []):
            messages.error(request, str(error))
        return _back(request)
    try:
        due = form.cleaned_data["scheduled_at"]
        task = services.reschedule_task(owner=request.user, task_id=task_id, scheduled_at=due)
    except TaskNotFoundError as exc:
        raise Http404(str(exc)) from exc
    except ReservemailError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Mail #%(id)s moved to %(when)s (%(zone)s).")
            % {"id": task.pk, "when": _when(task), "zone": timezone.get_current_timezone_name()},
        )
    return _back(request)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The health report as JSON: 200 when all is well, 503 when something needs attention."""
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)
