"""Task admin: read-only state, actions that go through the services, and a "send or reserve" view.

Nothing here writes a status: every action loops over the selected ids and calls one service per
row, then reports per task what happened. The add view is our own (not Django's changeform,
which runs in transaction.atomic) so the services' after-commit queue calls run as usual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django_rq.models import Dashboard

from reservemail import admin_base
from reservemail.exceptions import ReservemailError
from reservemail.http import found_or_404
from reservemail.rq_dashboard import DashboardAdmin
from tasks import services
from tasks.compose import FORGET_CSV, preview_of, review_of, without_csv
from tasks.display import log_in_zone, preview_json
from tasks.forms import MailForm, ReservationEditForm
from tasks.mail import MailSpec
from tasks.models import PENDING, Delivery, Task
from tasks.recipients import label_of
from tasks.selectors import get_task_of, with_context_text
from tasks.submissions import new_submission, send_once, send_test_from_form

S = Task.Status
# Why a task in this status is skipped by an action, per action.
NOT_PENDING = {
    S.RUNNING: gettext_lazy("already running"),
    S.FINISHED: gettext_lazy("already finished"),
    S.CANCELED: gettext_lazy("already canceled"),
}


class DeliveryInline(admin.TabularInline):
    model = Delivery
    verbose_name_plural = gettext_lazy("deliveries (one per recipient)")
    extra = 0
    can_delete = False
    fields = readonly_fields = ("address", "name", "context", "status", "sent_at", "error", "message_id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AdminMailForm(MailForm):
    """The mail form plus the user the send belongs to."""

    owner = forms.ModelChoiceField(queryset=get_user_model().objects.order_by("username"), label=gettext_lazy("Owner"))
    field_order = ["owner", "template", "recipients", "description", "context", "reserve", "scheduled_at"]


@admin.register(Task)
class TaskAdmin(admin_base.ModelAdmin):
    list_display = ["id", "description", "status", "owner", "template", "reserved_at", "progress", "failed", "is_test"]
    list_display_links = ["id", "description"]
    list_filter = [
        "status",
        "queue",
        "failed",
        "is_test",
        ("created_at", admin.DateFieldListFilter),
        ("reserved_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["owner"]
    search_fields = ["description", "recipients", "owner__username", "owner__email"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "owner",
        "description",
        "template",
        "recipients_shown",
        "context_shown",
        "queue",
        "status",
        "failed",
        "is_test",
        "progress",
        "attempts",
        "reserved_at",
        "created_at",
        "started_at",
        "heartbeat_at",
        "ended_at",
        "log_lines",
    )
    inlines = [DeliveryInline]
    actions = ["cancel_selected", "stop_selected", "retry_selected", "send_now_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Task]:
        # The context as stored text: a row from before the input limits may be too deep to decode.
        return with_context_text(super().get_queryset(request))

    @admin.display(description=gettext_lazy("recipients"))
    def recipients_shown(self, obj: Task) -> str:
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>', "\n".join(label_of(r) for r in obj.recipients)
        )

    @admin.display(description=gettext_lazy("context"))
    def context_shown(self, obj: Task) -> str:
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre>', preview_json(getattr(obj, "context_text", ""))
        )

    @admin.display(description=gettext_lazy("log"))
    def log_lines(self, obj: Task) -> str:
        return format_html('<pre style="white-space: pre-wrap; margin: 0">{}</pre>', log_in_zone(obj.log) or "-")

    # The detail page is read-only: a saved form would overwrite the row behind the worker's back.
    def has_change_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Task | None = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.cancel_task")

    # --- actions --------------------------------------------------------------------------

    def _run(
        self,
        request: HttpRequest,
        queryset: QuerySet[Task],
        *,
        call: Callable[[int], Task],
        skip: Callable[[str, bool], str | None],
        done_message: Callable[[list[Task]], str],
    ) -> None:
        """Call ``call`` for each selected id that ``skip`` does not rule out; report per task."""
        done: list[Task] = []
        skipped: list[str] = []
        for task_id, status, failed in queryset.order_by("pk").values_list("pk", "status", "failed"):
            reason = skip(status, failed)
            if reason is None:
                try:
                    result = call(task_id)
                except ReservemailError as exc:
                    reason = exc.message
                else:
                    done.append(result)
                    self.log_change(request, result, done_message([result]))
                    continue
            skipped.append(f"#{task_id} {reason}")
        self.message_user(request, done_message(done), messages.SUCCESS if done else messages.INFO)
        if skipped:
            text = ngettext("%(n)d task skipped: %(list)s.", "%(n)d tasks skipped: %(list)s.", len(skipped))
            self.message_user(request, text % {"n": len(skipped), "list": "; ".join(skipped)}, messages.WARNING)

    @admin.action(description=gettext_lazy("Cancel selected reservations"), permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._run(
            request,
            queryset,
            call=lambda pk: services.cancel_reserve(owner=None, task_id=pk).task,
            skip=lambda status, failed: None if status in PENDING else str(NOT_PENDING[S(status)]),
            done_message=lambda done: (
                ngettext("%(n)d task canceled.", "%(n)d tasks canceled.", len(done)) % {"n": len(done)}
            ),
        )

    @admin.action(description=gettext_lazy("Stop selected running tasks"), permissions=["cancel"])
    def stop_selected(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        outcomes: dict[int, str] = {}

        def stop(pk: int) -> Task:
            outcome = services.cancel_task(owner=None, task_id=pk)
            outcomes[pk] = outcome.message
            return outcome.task

        self._run(
            request,
            queryset,
            call=stop,
            skip=lambda status, failed: None if status == S.RUNNING else _("is not running (%s)") % S(status).label,
            done_message=lambda done: (
                ngettext("%(n)d task stopped.", "%(n)d tasks stopped.", len(done)) % {"n": len(done)}
                + "".join(f" {outcomes[t.pk]}" for t in done if t.pk in outcomes)
            ),
        )

    @admin.action(description=gettext_lazy("Retry selected failed tasks (as new tasks)"), permissions=["add"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._run(
            request,
            queryset,
            call=lambda pk: services.retry_task(owner=None, task_id=pk),
            skip=lambda status, failed: None if failed else _("did not fail"),
            done_message=lambda done: (
                ngettext(
                    "%(n)d failed task sent again as a new task: %(ids)s.",
                    "%(n)d failed tasks sent again as new tasks: %(ids)s.",
                    len(done),
                )
                % {"n": len(done), "ids": ", ".join(f"#{t.pk}" for t in done) or "-"}
            ),
        )

    @admin.action(description=gettext_lazy("Send selected reservations now"), permissions=["change"])
    def send_now_selected(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        self._run(
            request,
            queryset,
            call=lambda pk: services.send_now(owner=None, task_id=pk),
            skip=lambda status, failed: None if status == S.RESERVED else _("is not reserved (%s)") % S(status).label,
            done_message=lambda done: (
                ngettext("%(n)d reservation sent now.", "%(n)d reservations sent now.", len(done)) % {"n": len(done)}
            ),
        )

    # --- "send or reserve a mail" ---------------------------------------------------------

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None) -> HttpResponse:
        """Create a send through reserve_task / enqueue_task; service errors become form errors."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.POST.get("action") == FORGET_CSV:
            form = AdminMailForm(initial=without_csv(request.POST))
        else:
            form = AdminMailForm(request.POST or None, request.FILES or None, initial={"owner": request.user.pk})
        shown: dict[str, Any] = {}
        action = request.POST.get("action")
        if form.is_bound and form.is_valid():
            if action == "preview" or form.csv_is_new:  # a new file is reviewed, not sent
                shown["preview"] = preview_of(form)
            elif action == "test":
                self._send_test(request, form)
            else:
                task = self._create(request, form)
                if task is not None:
                    return HttpResponseRedirect(reverse("admin:tasks_task_change", args=[task.pk]))
        elif form.is_bound and action == "test":
            self.message_user(request, _("The test was not sent. Please correct the marked fields."), messages.ERROR)
        if form.csv_import is not None and not form.csv_import.errors:
            shown["csv_review"] = review_of(
                form.csv_import, template=form.data.get("template", ""), shared=form.cleaned_data.get("context") or {}
            )
        context = {
            **shown,
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Send or reserve a mail"),
            "form": form,
            "test_submission": new_submission(),  # new on every page shown: a click on it is a new test
            "media": self.media + form.media,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/tasks/task/reserve.html", context)

    def _create(self, request: HttpRequest, form: AdminMailForm) -> Task | None:
        """The send the form asks for, once per filled-in form (tasks.submissions); None with the errors shown."""
        staff = cast(AbstractBaseUser, request.user)  # behind admin_view: a signed-in staff member
        try:
            outcome = send_once(
                user=staff,
                submission=form.cleaned_data.get("submission") or "",
                data=request.POST,
                handler=lambda: self._made(request, form),
            )
        except ReservemailError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            return None
        task = get_task_of(None, outcome.body["id"])
        status = task.status_in_sentence()
        if outcome.replayed:
            self.message_user(
                request,
                _("This form was already sent; nothing more was sent. Mail #%(id)s is %(status)s.")
                % {"id": task.pk, "status": status},
                messages.WARNING,
            )
        else:
            self.message_user(request, _("Mail #%(id)s is %(status)s.") % {"id": task.pk, "status": status})
        return task

    def _send_test(self, request: HttpRequest, form: AdminMailForm) -> None:
        """A test to the signed-in staff member (not the owner), once per page shown; the form stays filled in."""
        staff = cast(AbstractBaseUser, request.user)  # behind admin_view: a signed-in staff member
        answer = send_test_from_form(form, user=staff, post=request.POST)
        if answer.outcome is not None and not answer.outcome.replayed:  # in the admin's history, as a send made here
            self.log_addition(request, get_task_of(None, answer.outcome.body["id"]), _("test sent through the admin"))
        self.message_user(request, answer.text, answer.level)

    def _made(self, request: HttpRequest, form: AdminMailForm) -> tuple[int, dict[str, Any]]:
        """Create the send and log it in the admin's history; ``(201, {"id": ...})`` for the idempotency store."""
        data = form.cleaned_data
        mail = MailSpec(template=data["template"], recipients=data["recipients"], context=data["context"])
        if data["reserve"]:
            task = services.reserve_task(
                owner=data["owner"], scheduled_at=data["scheduled_at"], mail=mail, description=data["description"]
            )
        else:
            task = services.enqueue_task(owner=data["owner"], mail=mail, description=data["description"])
        self.log_addition(request, task, _("created through the admin (%s)") % task.get_status_display())
        return 201, {"id": task.pk}

    # --- "edit reservation" ---------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        edit = path("<int:task_id>/edit/", self.admin_site.admin_view(self.edit_view), name="tasks_task_edit")
        return [edit, *super().get_urls()]

    def edit_view(self, request: HttpRequest, task_id: int) -> HttpResponse:
        """Edit a reservation through edit_reservation (the mail form's fields); state fields stay read-only."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        task = found_or_404(get_task_of, None, task_id)
        back = HttpResponseRedirect(reverse("admin:tasks_task_change", args=[task.pk]))
        if request.method != "POST" and task.status != S.RESERVED:
            self.message_user(request, _("is not reserved (%s)") % task.get_status_display(), messages.WARNING)
            return back
        form = ReservationEditForm(request.POST or None, task=task)
        if request.method == "POST" and form.is_valid():
            try:
                task = services.edit_reservation(owner=None, task_id=task.pk, changes=form.changes())
            except ReservemailError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.message)
            else:
                self.log_change(request, task, _("reservation edited through the admin"))
                self.message_user(request, _("Mail #%(id)s saved.") % {"id": task.pk}, messages.SUCCESS)
                return back
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": task,
            "title": _("Edit reservation #%(id)s") % {"id": task.pk},
            "form": form,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "admin/tasks/task/edit.html", context)


if admin.site.is_registered(Dashboard):  # RQ_SHOW_ADMIN_LINK: swap in the permission-checking one
    admin.site.unregister(Dashboard)
    admin.site.register(Dashboard, DashboardAdmin)
