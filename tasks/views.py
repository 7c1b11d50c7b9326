"""The mail form and the task history; thin: parse, call one service, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from reservemail.exceptions import ReservemailError
from tasks import services
from tasks.exceptions import TaskNotFoundError
from tasks.forms import MailForm
from tasks.health import health_report
from tasks.mail import MailSpec
from tasks.selectors import list_tasks_of


@login_required
def mail_form(request: HttpRequest) -> HttpResponse:
    form = MailForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        mail = MailSpec(template=data["template"], recipients=data["recipients"], context=data["context"])
        try:
            if data["reserve"]:
                task = services.reserve_task(
                    owner=request.user, scheduled_at=data["scheduled_at"], mail=mail, description=data["description"]
                )
                messages.success(request, _("Mail #%(id)s reserved.") % {"id": task.pk})
            else:
                task = services.enqueue_task(owner=request.user, mail=mail, description=data["description"])
                messages.success(request, _("Mail #%(id)s is being sent.") % {"id": task.pk})
        except ReservemailError as exc:
            field = exc.field if exc.field in form.fields else None
            form.add_error(field, exc.message)
        else:
            return redirect("tasks:mail")
    return render(request, "tasks/mail_form.html", {"form": form})


@login_required
def history(request: HttpRequest) -> HttpResponse:
    page = Paginator(list_tasks_of(request.user).prefetch_related("deliveries"), 20).get_page(request.GET.get("page"))
    return render(request, "tasks/history.html", {"page": page})


@require_POST
@login_required
def cancel(request: HttpRequest, task_id: int) -> HttpResponse:
    try:
        task = services.cancel_task(owner=request.user, task_id=task_id)
    except TaskNotFoundError as exc:
        raise Http404(str(exc)) from exc
    except ReservemailError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Mail #%(id)s canceled.") % {"id": task.pk})
    next_url = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        return redirect(next_url)
    return redirect("tasks:mail")


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The health report as JSON: 200 when all is well, 503 when something needs attention."""
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)
