"""Django admin: actions through the services on a mix of states, permissions, the add view, RQ dashboard."""

import re
import zoneinfo
from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import formats, timezone
from rq.registry import ScheduledJobRegistry

from notifications.models import Notification
from tasks import scheduler, services, transitions
from tasks.mail import MailSpec
from tasks.models import Task
from tests.tasks.test_compose_form import token_of_test_button

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/tasks/task/"
ADD = "/admin/tasks/task/add/"
MAIL = MailSpec(template="welcome", recipients=("a@example.com", "b@example.com"), context={"name": "A"})


def scheduled(conn, task_id, queue="high"):
    return conn.zscore(ScheduledJobRegistry(queue, connection=conn).key, str(task_id))


def queued_ids(conn, queue="default"):
    return [int(x) for x in conn.lrange(f"rq:queue:{queue}", 0, -1)]


def ended(owner, status, failed=False, description=None):
    now = timezone.now()
    return Task.objects.create(
        owner=owner,
        description=description or f"{status}{' failed' if failed else ''}",
        template="welcome",
        recipients=["a@example.com"],
        context={"name": "A"},
        status=status,
        failed=failed,
        started_at=now,
        ended_at=now,
        attempts=1,
        log="2026-05-01T10:00:00+0000 attempt 1: sent 0, failed 1\n" if failed else "",
    )


@pytest.fixture
def mix(user, django_capture_on_commit_callbacks):
    """One task in each state: reserved and queued (with real jobs), running, finished, canceled, failed."""
    with django_capture_on_commit_callbacks(execute=True):
        reserved = services.reserve_task(
            owner=user, scheduled_at=timezone.now() + timedelta(hours=1), mail=MAIL, description="reserved"
        )
        queued = services.enqueue_task(owner=user, mail=MAIL, description="queued")
        running = services.enqueue_task(owner=user, mail=MAIL, description="running")
    assert transitions.claim_own(task_id=running.pk, now=timezone.now())
    return {
        "reserved": reserved,
        "queued": queued,
        "running": running,
        "finished": ended(user, "finished"),
        "canceled": ended(user, "canceled"),
        "failed": ended(user, "finished", failed=True),
    }


def act(client, capture, action, tasks):
    with capture(execute=True):
        response = client.post(
            CHANGELIST, {"action": action, "_selected_action": [t.pk for t in tasks.values()]}, follow=True
        )
    assert response.status_code == 200
    return [(m.level_tag, m.message) for m in response.context["messages"]]


def statuses(tasks):
    return {name: Task.objects.get(pk=t.pk).status for name, t in tasks.items()}


def ids(tasks, *names):
    return [tasks[n].pk for n in names]


# --- actions, each on the whole mix ---------------------------------------------------------------


def test_cancel_selected_cancels_pending_and_reports_the_rest(
    admin_client, mix, redis_conn, django_capture_on_commit_callbacks
):
    assert scheduled(redis_conn, mix["reserved"].pk) is not None
    assert mix["queued"].pk in queued_ids(redis_conn)
    found = act(admin_client, django_capture_on_commit_callbacks, "cancel_selected", mix)
    r, q, run, f, c, fl = ids(mix, "reserved", "queued", "running", "finished", "canceled", "failed")
    assert found == [
        ("success", "2 tasks canceled."),
        (
            "warning",
            f"4 tasks skipped: #{run} already running; #{f} already finished; #{c} already canceled; "
            f"#{fl} already finished.",
        ),
    ]
    assert statuses(mix) == {
        "reserved": "canceled",
        "queued": "canceled",
        "running": "running",
        "finished": "finished",
        "canceled": "canceled",
        "failed": "finished",
    }
    # The canceled reservation's job is gone from the scheduled registry, the queued one's from its queue.
    assert scheduled(redis_conn, r) is None and not redis_conn.exists(f"rq:job:{r}")
    assert q not in queued_ids(redis_conn) and not redis_conn.exists(f"rq:job:{q}")
    assert "canceled by staff" in Task.objects.get(pk=r).log


def test_stop_selected_stops_only_running(admin_client, mix, redis_conn, django_capture_on_commit_callbacks):
    found = act(admin_client, django_capture_on_commit_callbacks, "stop_selected", mix)
    r, q, f, c, fl = ids(mix, "reserved", "queued", "finished", "canceled", "failed")
    running = mix["running"].pk
    assert found == [
        ("success", f"1 task stopped. Mail #{running} stopped: 0 of 0 sent."),
        (
            "warning",
            f"5 tasks skipped: #{r} is not running (Reserved); #{q} is not running (Queued); "
            f"#{f} is not running (Finished); #{c} is not running (Canceled); "
            f"#{fl} is not running (Finished).",
        ),
    ]
    assert statuses(mix)["running"] == "canceled"
    assert "stopped by staff" in Task.objects.get(pk=mix["running"].pk).log
    assert scheduled(redis_conn, r) is not None  # the others' jobs are untouched
    assert q in queued_ids(redis_conn)


def test_retry_selected_sends_failed_tasks_again_as_new_tasks(
    admin_client, mix, user, redis_conn, django_capture_on_commit_callbacks
):
    before = set(Task.objects.values_list("pk", flat=True))
    found = act(admin_client, django_capture_on_commit_callbacks, "retry_selected", mix)
    [new] = Task.objects.exclude(pk__in=before)
    skipped = [f"#{pk} did not fail" for pk in ids(mix, "reserved", "queued", "running", "finished", "canceled")]
    assert found == [
        ("success", f"1 failed task sent again as a new task: #{new.pk}."),
        ("warning", f"5 tasks skipped: {'; '.join(skipped)}."),
    ]
    old = mix["failed"]
    assert (new.owner, new.status, new.template, new.recipients, new.context, new.description) == (
        user,
        "queued",
        old.template,
        old.recipients,
        old.context,
        old.description,
    )
    assert new.pk in queued_ids(redis_conn)
    assert statuses(mix)["failed"] == "finished"  # the old row is history, unchanged


def test_send_now_selected_turns_reservation_into_immediate_send(
    admin_client, mix, redis_conn, django_capture_on_commit_callbacks
):
    found = act(admin_client, django_capture_on_commit_callbacks, "send_now_selected", mix)
    r, q, run, f, c, fl = ids(mix, "reserved", "queued", "running", "finished", "canceled", "failed")
    assert found == [
        ("success", "1 reservation sent now."),
        (
            "warning",
            f"5 tasks skipped: #{q} is not reserved (Queued); #{run} is not reserved (Running); "
            f"#{f} is not reserved (Finished); #{c} is not reserved (Canceled); "
            f"#{fl} is not reserved (Finished).",
        ),
    ]
    task = Task.objects.get(pk=r)
    assert (task.status, task.queue) == ("queued", "default")
    assert scheduled(redis_conn, r) is None
    assert r in queued_ids(redis_conn)


def test_actions_are_logged_in_admin_history(admin_client, mix, django_capture_on_commit_callbacks):
    act(admin_client, django_capture_on_commit_callbacks, "cancel_selected", {"r": mix["reserved"]})
    entry = LogEntry.objects.get(object_id=str(mix["reserved"].pk))
    assert entry.get_change_message() == "1 task canceled."


# --- list, detail, read-only ----------------------------------------------------------------------


def test_changelist_shows_reserved_at_in_the_admins_zone(admin_client, mix):
    session = admin_client.session
    session["reservemail_timezone"] = "America/New_York"
    session.save()
    response = admin_client.get(CHANGELIST)
    due = mix["reserved"].reserved_at
    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        shown = formats.localize(timezone.template_localtime(due))
    with timezone.override(zoneinfo.ZoneInfo("Asia/Seoul")):
        seoul = formats.localize(timezone.template_localtime(due))
    assert shown != seoul
    assert shown in response.content.decode()
    assert seoul not in response.content.decode()


def test_changelist_search_and_filters(admin_client, user, other_user, mix):
    bob = ended(other_user, "finished", description="for bob")
    Task.objects.filter(pk=bob.pk).update(recipients=["bob@example.org"])

    def listed(query):
        return {t.pk for t in admin_client.get(f"{CHANGELIST}?{query}").context["cl"].result_list}

    assert listed("q=bob@example.org") == {bob.pk}
    assert listed("q=bob") == {bob.pk}  # owner username and recipient both match
    assert listed("q=alice") == {t.pk for t in mix.values()}
    assert listed("q=reserved") == {mix["reserved"].pk}  # description
    assert listed("status__exact=running") == {mix["running"].pk}
    assert listed("queue__exact=high") == {mix["reserved"].pk}
    assert listed("failed__exact=1") == {mix["failed"].pk}
    response = admin_client.get(CHANGELIST)
    [created] = [f for f in response.context["cl"].filter_specs if getattr(f, "field_path", "") == "created_at"]
    [today] = [c["query_string"] for c in created.choices(response.context["cl"]) if c["display"] == "Today"]
    assert len(listed(today.lstrip("?"))) == 7


def test_detail_is_read_only_with_log_and_deliveries(admin_client, user):
    task = ended(user, "finished", failed=True)
    task.deliveries.create(address="a@example.com", status="failed", message_id="<m@x>", error="550 no such user")
    response = admin_client.get(f"{CHANGELIST}{task.pk}/change/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "attempt 1: sent 0, failed 1" in html and "550 no such user" in html
    assert 'name="description"' not in html and 'name="_save"' not in html  # nothing to edit or save
    before = Task.objects.filter(pk=task.pk).values().get()
    assert admin_client.post(f"{CHANGELIST}{task.pk}/change/", {"description": "x"}).status_code == 403
    assert Task.objects.filter(pk=task.pk).values().get() == before
    assert admin_client.get(f"{CHANGELIST}{task.pk}/delete/").status_code == 403


def test_notification_admin_is_read_only(admin_client, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.reserve_task(
            owner=user, scheduled_at=timezone.now() + timedelta(hours=1), mail=MAIL, description="watched"
        )
    row = Notification.objects.get(name="task_reserve")
    listing = admin_client.get("/admin/notifications/notification/")
    assert listing.status_code == 200 and "task_reserve" in listing.content.decode()
    detail = admin_client.get(f"/admin/notifications/notification/{row.pk}/change/")
    assert detail.status_code == 200 and "watched" in detail.content.decode()
    assert admin_client.get("/admin/notifications/notification/add/").status_code == 403
    assert admin_client.post(f"/admin/notifications/notification/{row.pk}/change/", {}).status_code == 403
    assert admin_client.post(f"/admin/notifications/notification/{row.pk}/delete/", {"post": "yes"}).status_code == 403


# --- the "send or reserve" view -------------------------------------------------------------------


def form_data(**change):
    return {
        "owner": "",
        "template": "welcome",
        "recipients": "a@example.com, b@example.com",
        "description": "From the admin",
        "context": '{"name": "B"}',
        "reserve": "on",
        "scheduled_at": "",
        **change,
    }


def test_add_view_reserves_through_the_service(admin_client, user, redis_conn, django_capture_on_commit_callbacks):
    local = timezone.localtime(timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            ADD, form_data(owner=user.pk, scheduled_at=local.strftime("%Y-%m-%dT%H:%M")), follow=True
        )
    task = Task.objects.get()
    assert response.redirect_chain == [(f"{CHANGELIST}{task.pk}/change/", 302)]
    assert [m.message for m in response.context["messages"]] == [f"Mail #{task.pk} is reserved."]
    assert (task.owner, task.status, task.reserved_at) == (user, "reserved", local)
    assert task.recipients == ["a@example.com", "b@example.com"] and task.context == {"name": "B"}
    assert scheduled(redis_conn, task.pk) == scheduler.release_time(local).timestamp()


def test_add_view_sends_now_without_reserve(admin_client, admin_user, redis_conn, django_capture_on_commit_callbacks):
    assert "selected" in admin_client.get(ADD).content.decode()  # the admin is the default owner
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(ADD, form_data(owner=admin_user.pk, reserve=""))
    task = Task.objects.get()
    assert (task.owner, task.status) == (admin_user, "queued")
    assert queued_ids(redis_conn) == [task.pk]


def test_add_view_sent_twice_sends_once(admin_client, admin_user, redis_conn, django_capture_on_commit_callbacks):
    """The admin's form names its submission too: the twin POST creates nothing and says which mail the first made."""
    found = re.search(r'name="submission" value="([0-9a-f]{32})"', admin_client.get(ADD).content.decode())
    assert found
    data = form_data(owner=admin_user.pk, reserve="", submission=found.group(1))
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(ADD, data)
        again = admin_client.post(ADD, data, follow=True)
    task = Task.objects.get()
    assert again.redirect_chain == [(f"{CHANGELIST}{task.pk}/change/", 302)]
    told = [m.message for m in again.context["messages"]]
    first = f"Mail #{task.pk} is queued."  # the first POST's message, not shown yet
    assert told == [first, f"This form was already sent; nothing more was sent. {first}"]
    assert queued_ids(redis_conn) == [task.pk]


def test_add_view_sends_a_test_to_the_staff_member_once_per_page(
    admin_client, admin_user, user, redis_conn, django_capture_on_commit_callbacks
):
    """ "Send a test to me" on the admin's page: to the one signed in (not the owner chosen), once per page shown."""
    page = admin_client.get(ADD).content.decode()
    token = token_of_test_button(page)
    assert 'id="test-button" class="button"' in page and 'id="preview-button" class="button"' in page
    data = form_data(owner=user.pk, reserve="", action="test", preview_recipient="b@example.com", test_submission=token)
    with django_capture_on_commit_callbacks(execute=True):
        first = admin_client.post(ADD, data)
        twin = admin_client.post(ADD, data)
    (task,) = Task.objects.all()
    assert (task.owner, task.is_test, task.status, task.subject_prefix) == (admin_user, True, "queued", "[TEST] ")
    assert (task.recipients, task.context) == ([admin_user.email], {"name": "B"})
    assert queued_ids(redis_conn) == [task.pk]
    sent = f"Test #{task.pk} is being sent to {admin_user.email}."
    assert [m.message for m in first.context["messages"]] == [sent]
    assert [m.message for m in twin.context["messages"]] == [
        f"This test was already sent; nothing more was sent. {sent}"
    ]
    assert first.context["form"]["description"].value() == "From the admin", "the form stays filled in"
    (entry,) = LogEntry.objects.filter(object_id=str(task.pk))  # the twin is not logged again
    assert (entry.user, entry.is_addition(), entry.get_change_message()) == (
        admin_user,
        True,
        "test sent through the admin",
    )
    assert token_of_test_button(first.content.decode()) != token
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(ADD, {**data, "test_submission": token_of_test_button(twin.content.decode())})
    assert Task.objects.filter(is_test=True).count() == 2


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"preview_recipient": "x@example.com"}, "preview_recipient", "“x@example.com” is not one of the recipients."),
        ({"recipients": "a@example.com, nope"}, "recipients", "“nope” is not a valid e-mail address."),
    ],
)
def test_add_view_refused_test_says_why_and_sends_nothing(admin_client, admin_user, redis_conn, change, field, message):
    data = form_data(owner=admin_user.pk, reserve="", action="test")
    response = admin_client.post(ADD, {**data, **change})
    assert response.status_code == 200
    assert response.context["form"].errors == {field: [message]}
    told = [m.message for m in response.context["messages"]]
    assert len(told) == 1 and told[0].startswith("The test was not sent")
    assert Task.objects.count() == 0 and redis_conn.keys("rq:*") == []


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"scheduled_at": "2000-01-01T10:00"},
            "scheduled_at",
            "This time has already passed. Choose a time in the future.",
        ),
        ({"recipients": "a@example.com, nope"}, "recipients", "“nope” is not a valid e-mail address."),
        ({"template": "nope"}, "template", "Select a valid choice. nope is not one of the available choices."),
    ],
)
def test_add_view_shows_service_errors_on_the_form(admin_client, admin_user, redis_conn, change, field, message):
    data = form_data(
        owner=admin_user.pk, scheduled_at=(timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    )
    response = admin_client.post(ADD, {**data, **change})
    assert response.status_code == 200
    assert response.context["form"].errors == {field: [message]}
    assert Task.objects.count() == 0
    assert redis_conn.keys("rq:*") == []


# --- permissions for staff who are not superusers -------------------------------------------------


@pytest.fixture
def staff(django_user_model):
    def make(*codenames):
        member = django_user_model.objects.create_user(username="staff", password="pw-staff-123", is_staff=True)
        for codename in codenames:
            app, code = codename.split(".")
            member.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=code))
        client = Client()
        client.force_login(member)
        return client

    return make


def action_names(response):
    return {name for name, _ in response.context["action_form"].fields["action"].choices if name}


def test_staff_without_task_permissions_cannot_see_tasks(staff):
    assert staff().get(CHANGELIST).status_code == 403


def test_view_only_staff_sees_but_cannot_act(staff, mix, redis_conn, django_capture_on_commit_callbacks):
    client = staff("tasks.view_task")
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert response.context["action_form"] is None  # no action is open to this user
    assert client.get(f"{CHANGELIST}{mix['reserved'].pk}/change/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        client.post(CHANGELIST, {"action": "cancel_selected", "_selected_action": [mix["reserved"].pk]})
    assert Task.objects.get(pk=mix["reserved"].pk).status == "reserved"
    assert scheduled(redis_conn, mix["reserved"].pk) is not None
    assert client.get(ADD).status_code == 403


def test_cancel_permission_allows_cancel_and_stop_only(staff, mix, redis_conn, django_capture_on_commit_callbacks):
    client = staff("tasks.view_task", "tasks.cancel_task")
    assert action_names(client.get(CHANGELIST)) == {"cancel_selected", "stop_selected"}
    found = act(client, django_capture_on_commit_callbacks, "cancel_selected", {"r": mix["reserved"]})
    assert found == [("success", "1 task canceled.")]
    assert scheduled(redis_conn, mix["reserved"].pk) is None
    with django_capture_on_commit_callbacks(execute=True):
        client.post(CHANGELIST, {"action": "send_now_selected", "_selected_action": [mix["queued"].pk]})
    assert Task.objects.get(pk=mix["queued"].pk).queue == "default"


def test_change_and_add_permissions_unlock_send_now_and_retry(staff):
    client = staff("tasks.view_task", "tasks.change_task", "tasks.add_task")
    assert action_names(client.get(CHANGELIST)) == {"send_now_selected", "retry_selected"}
    assert client.get(ADD).status_code == 200


# --- the django-rq dashboard ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/django-rq/", "/admin/django_rq/dashboard/"])
def test_rq_dashboard_needs_staff_and_its_permission(client, user, staff, admin_client, path):
    anonymous = client.get(path)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/admin/login/")
    client.force_login(user)  # signed in, not staff
    assert client.get(path)["Location"].startswith("/admin/login/")
    assert staff("tasks.view_task").get(path).status_code == 403
    assert admin_client.get(path).status_code == 200


def test_rq_dashboard_lists_scheduled_jobs_for_permitted_staff(staff, user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        task = services.reserve_task(
            owner=user, scheduled_at=timezone.now() + timedelta(hours=1), mail=MAIL, description="r"
        )
    client = staff("django_rq.admin")
    home = client.get("/admin/")
    assert "/admin/django_rq/dashboard/" in home.content.decode()
    [high] = [
        i
        for i in range(3)
        if "Scheduled Jobs in high" in client.get(f"/admin/django-rq/queues/{i}/scheduled/").content.decode()
    ]
    page = client.get(f"/admin/django-rq/queues/{high}/scheduled/")
    assert page.status_code == 200
    assert f"/admin/django-rq/queues/{high}/{task.pk}/" in page.content.decode()
    assert client.get(f"/admin/django-rq/workers/{high}/").status_code == 200


def breadcrumbs(page):
    """The breadcrumbs trail's links and text, whitespace collapsed."""
    trail = re.search(r'<div class="breadcrumbs">(.*?)</div>', page, re.S).group(1)
    return " ".join(trail.split())


def test_reserve_and_edit_pages_share_one_breadcrumbs_trail(admin_client, user, django_capture_on_commit_callbacks):
    start = (
        '<a href="/admin/">Home</a> &rsaquo; <a href="/admin/tasks/">Tasks</a>'
        f' &rsaquo; <a href="{CHANGELIST}">Tasks</a>'
    )
    assert breadcrumbs(admin_client.get(ADD).content.decode()) == f"{start} &rsaquo; Send or reserve a mail"
    with django_capture_on_commit_callbacks(execute=True):
        task = services.reserve_task(
            owner=user,
            scheduled_at=timezone.now() + timedelta(hours=1),
            mail=MailSpec(template="welcome", recipients=("a@example.com",), context={}),
            description="later",
        )
    page = admin_client.get(f"{CHANGELIST}{task.pk}/edit/").content.decode()
    assert breadcrumbs(page) == (
        f'{start} &rsaquo; <a href="{CHANGELIST}{task.pk}/change/">{task}</a> &rsaquo; Edit reservation #{task.pk}'
    )
    assert 'href="/static/admin/css/forms.css"' in page


def test_edit_page_of_a_missing_task_is_404(admin_client):
    assert admin_client.get(f"{CHANGELIST}999999/edit/").status_code == 404


@pytest.mark.parametrize(
    "language, words, foreign",
    [("en", ["Owner", "Tasks"], "소유자"), ("ko", ["소유자", "메일 작업", "알림"], "Tasks")],
)
def test_admin_labels_follow_the_request_language(admin_client, language, words, foreign):
    """Labels are translated when a page is drawn, not once when the module is loaded."""
    for other in ("ko", "en"):  # whichever language a label might have been frozen in
        admin_client.get("/admin/tasks/task/add/", HTTP_ACCEPT_LANGUAGE=other)
    pages = "".join(
        admin_client.get(url, HTTP_ACCEPT_LANGUAGE=language).content.decode()
        for url in ("/admin/tasks/task/add/", "/admin/")
    )
    for word in words:
        assert word in pages
    assert foreign not in pages
