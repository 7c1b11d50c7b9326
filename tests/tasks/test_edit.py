"""Editing a reservation: the service (edit_reservation), PATCH /api/tasks/{id}/, the task page's form, the admin."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rq.registry import ScheduledJobRegistry

from notifications.models import Notification
from tasks import scheduler, services, transitions
from tasks.exceptions import ReservationError, TaskNotFoundError, TaskStateError
from tasks.mail import MailSpec
from tasks.models import Task
from tasks.services import ReservationChanges
from tests.callbacks import queue_calls
from tests.tasks.test_compose_form import token_of_test_button

pytestmark = pytest.mark.django_db

MAIL = MailSpec(template="welcome", recipients=("a@example.com", "b@example.com"), context={"name": "A"})


def scheduled_score(conn, task_id, queue="high"):
    return conn.zscore(ScheduledJobRegistry(queue, connection=conn).key, str(task_id))


def reserve(user, capture, *, seconds=600):
    due = timezone.now() + timedelta(seconds=seconds)
    with capture(execute=True):
        return services.reserve_task(owner=user, scheduled_at=due, mail=MAIL, description="June news")


def row(task):
    task.refresh_from_db()
    return {
        "status": task.status,
        "template": task.template,
        "recipients": task.recipients,
        "context": task.context,
        "description": task.description,
        "reserved_at": task.reserved_at,
    }


def edit(user, task, capture, **changes):
    with capture(execute=True) as callbacks:
        result = services.edit_reservation(owner=user, task_id=task.pk, changes=ReservationChanges(**changes))
    return result, callbacks


# --- the service ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"context": {"name": "Zed"}}, {"context": {"name": "Zed"}}),
        ({"description": "  July news  "}, {"description": "July news"}),
        ({"template": "reminder"}, {"template": "reminder"}),
        (
            {"recipients": "Carol <c@example.com>, a@example.com, A@example.com"},
            {"recipients": [{"address": "c@example.com", "name": "Carol"}, "a@example.com"]},
        ),
        (
            {"recipients": [{"address": "d@example.com", "name": "Dee", "context": {"name": "D"}}]},
            {"recipients": [{"address": "d@example.com", "name": "Dee", "context": {"name": "D"}}]},
        ),
    ],
    ids=["context", "description", "template", "recipients-text", "recipients-object"],
)
def test_edit_reservation_changes_each_field_and_nothing_else(
    user, redis_conn, django_capture_on_commit_callbacks, changes, expected
):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = row(task)
    score = scheduled_score(redis_conn, task.pk)
    result, callbacks = edit(user, task, django_capture_on_commit_callbacks, **changes)
    assert row(task) == {**before, **expected}
    assert {k: getattr(result, k) for k in expected} == expected
    assert queue_calls(callbacks) == []  # the time did not change: the job stays where it was
    assert scheduled_score(redis_conn, task.pk) == score
    assert f"edited by alice: {next(iter(expected))}" in task.log
    entry = Notification.objects.get(owner=user, name="task_reserve").payload["data"][0]
    assert (entry["task_id"], entry["description"], entry["status"]) == (task.pk, task.description, "reserved")


def test_edit_reservation_time_moves_the_job(user, redis_conn, django_capture_on_commit_callbacks, settings):
    settings.JOB_RELEASE_LEAD = 1.0
    task = reserve(user, django_capture_on_commit_callbacks)
    old_due = task.reserved_at
    new_due = timezone.now().replace(microsecond=0) + timedelta(hours=2)
    result, callbacks = edit(
        user, task, django_capture_on_commit_callbacks, scheduled_at=new_due, description="Later news"
    )
    assert len(queue_calls(callbacks)) == 1
    assert row(task)["reserved_at"] == result.reserved_at == new_due
    assert task.description == "Later news"
    assert scheduled_score(redis_conn, task.pk) == int(new_due.timestamp()) - 1
    assert redis_conn.zcard(ScheduledJobRegistry("high", connection=redis_conn).key) == 1
    assert f"edited by alice: description, reserved_at; rescheduled from {old_due.isoformat()}" in task.log
    entry = Notification.objects.get(owner=user, name="task_reserve").payload["data"][0]
    assert (entry["reserved_at"], entry["description"]) == (new_due.isoformat(), "Later news")


def test_edit_reservation_same_time_is_no_move(user, redis_conn, django_capture_on_commit_callbacks, settings):
    settings.RESERVATION_MIN_LEAD = 60
    task = reserve(user, django_capture_on_commit_callbacks, seconds=30 + 60)
    score = scheduled_score(redis_conn, task.pk)
    settings.RESERVATION_MIN_LEAD = 600  # the current time would now be too soon, but it is not a change
    _, callbacks = edit(user, task, django_capture_on_commit_callbacks, scheduled_at=task.reserved_at, context={})
    assert queue_calls(callbacks) == []
    assert scheduled_score(redis_conn, task.pk) == score
    assert row(task)["context"] == {}


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({}, "Give at least one part", None),
        ({"recipients": "not-an-address"}, "is not a valid e-mail address", "recipients"),
        ({"recipients": ""}, "Enter at least one recipient", "recipients"),
        ({"template": "nope"}, "Unknown template", "template"),
        ({"context": {"name": "x" * 300}}, "The subject would be", "context"),
        ({"context": {"n": float("nan")}}, "not finite", "context"),
        ({"description": "   "}, "A description is required", "description"),
        ({"scheduled_at": "soon"}, "must include a time zone", "scheduled_at"),
        ({"scheduled_at": "past"}, "at least 60 seconds", "scheduled_at"),
        ({"scheduled_at": "far", "context": {"name": "ok"}}, "within 365 days", "scheduled_at"),
    ],
)
def test_edit_reservation_bad_input_changes_nothing(
    user, redis_conn, django_capture_on_commit_callbacks, changes, error, field
):
    times = {
        "soon": (timezone.now() + timedelta(hours=1)).replace(tzinfo=None),
        "past": timezone.now() - timedelta(minutes=1),
        "far": timezone.now() + timedelta(days=400),
    }
    changes = {k: times.get(v, v) if k == "scheduled_at" else v for k, v in changes.items()}
    task = reserve(user, django_capture_on_commit_callbacks)
    before, log, score = row(task), task.log, scheduled_score(redis_conn, task.pk)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(ReservationError, match=error) as caught:
        services.edit_reservation(owner=user, task_id=task.pk, changes=ReservationChanges(**changes))
    assert caught.value.field == field
    assert queue_calls(callbacks) == []
    assert row(task) == before and task.log == log
    assert scheduled_score(redis_conn, task.pk) == score


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("running", "is already being sent and can no longer be changed"),
        ("finished", "has already finished"),
        ("canceled", "was canceled"),
        ("queued", "is queued to be sent now"),
    ],
)
def test_edit_reservation_once_it_left_is_a_state_error(user, django_capture_on_commit_callbacks, status, message):
    task = reserve(user, django_capture_on_commit_callbacks)
    Task.objects.filter(pk=task.pk).update(status=status)
    before = row(task)
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(TaskStateError, match=message) as caught:
        services.edit_reservation(
            owner=user, task_id=task.pk, changes=ReservationChanges(context={"name": "late"}, description="late")
        )
    assert caught.value.code == f"task_{status}"
    assert queue_calls(callbacks) == []
    assert row(task) == before


def test_edit_reservation_after_the_claim_is_refused_and_the_claim_reads_what_was_committed(
    user, django_capture_on_commit_callbacks
):
    """The claim is a conditional update from RESERVED: once it committed, the edit matches no row."""
    task = reserve(user, django_capture_on_commit_callbacks)
    edit(user, task, django_capture_on_commit_callbacks, context={"name": "Edited"})
    Task.objects.filter(pk=task.pk).update(reserved_at=timezone.now() - timedelta(seconds=1))
    assert transitions.claim_own(task_id=task.pk, now=timezone.now()) is True
    with pytest.raises(TaskStateError, match="already being sent"):
        edit(user, task, django_capture_on_commit_callbacks, context={"name": "Too late"})
    assert row(task)["context"] == {"name": "Edited"}


def test_edit_reservation_of_other_user_is_not_found(user, other_user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = row(task)
    with pytest.raises(TaskNotFoundError):
        services.edit_reservation(owner=other_user, task_id=task.pk, changes=ReservationChanges(description="mine"))
    assert row(task) == before


def test_edit_reservation_by_staff_edits_any_task(user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    edit(None, task, django_capture_on_commit_callbacks, description="Fixed by staff")
    assert row(task)["description"] == "Fixed by staff"
    assert "edited by staff: description" in task.log


def test_edit_reservation_checks_the_mail_as_it_would_be(user, django_capture_on_commit_callbacks):
    """A template change is checked with the context that stays, and the other way round."""
    task = reserve(user, django_capture_on_commit_callbacks)
    edit(user, task, django_capture_on_commit_callbacks, context={"title": "t" * 260})  # welcome ignores title
    before = row(task)
    with pytest.raises(ReservationError, match="The subject would be"):
        edit(user, task, django_capture_on_commit_callbacks, template="reminder")  # whose subject shows it
    assert row(task) == before


# --- the API: PATCH /api/tasks/{id}/ --------------------------------------------------------------


def iso(dt):
    text = timezone.localtime(dt).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@pytest.fixture
def api(user):
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"context": {"name": "Zed"}}, {"context": {"name": "Zed"}}),
        ({"description": "July news"}, {"description": "July news"}),
        ({"template": "reminder"}, {"template": "reminder"}),
        ({"recipients": ["Carol <c@example.com>"]}, {"recipients": ["Carol <c@example.com>"]}),
    ],
    ids=["context", "description", "template", "recipients"],
)
def test_patch_edits_each_field(api, user, redis_conn, django_capture_on_commit_callbacks, body, expected):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = row(task)
    score = scheduled_score(redis_conn, task.pk)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = api.patch(f"/api/tasks/{task.pk}/", body, format="json")
    assert response.status_code == 200
    answer = response.json()
    assert {k: answer[k] for k in expected} == expected
    assert (answer["id"], answer["status"], answer["reserved_at"]) == (task.pk, "reserved", iso(task.reserved_at))
    changed = {k: v for k, v in row(task).items() if v != before[k]}
    assert set(changed) == set(expected)
    assert queue_calls(callbacks) == [] and scheduled_score(redis_conn, task.pk) == score


def test_patch_time_and_content_together(api, user, redis_conn, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    later = (timezone.now() + timedelta(hours=5)).replace(microsecond=0)
    body = {"scheduled_at": later.isoformat(), "context": {"name": "New"}, "recipients": ["x@example.com"]}
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(f"/api/tasks/{task.pk}/", body, format="json")
    assert response.status_code == 200
    assert row(task) == {
        "status": "reserved",
        "template": "welcome",
        "recipients": ["x@example.com"],
        "context": {"name": "New"},
        "description": "June news",
        "reserved_at": later,
    }
    assert response.json()["reserved_at"] == iso(later)
    assert scheduled_score(redis_conn, task.pk) == scheduler.release_time(later).timestamp()


@pytest.mark.parametrize("status", ["running", "finished", "canceled"])
def test_patch_once_running_or_ended_is_409(api, user, django_capture_on_commit_callbacks, status):
    task = reserve(user, django_capture_on_commit_callbacks)
    Task.objects.filter(pk=task.pk).update(status=status)
    before = row(task)
    response = api.patch(f"/api/tasks/{task.pk}/", {"context": {"name": "late"}}, format="json")
    assert response.status_code == 409
    message = {
        "running": f"Task #{task.pk} is already being sent and can no longer be changed.",
        "finished": f"Task #{task.pk} has already finished.",
        "canceled": f"Task #{task.pk} was canceled.",
    }[status]
    assert response.json() == {"detail": message, "code": f"task_{status}"}
    assert row(task) == before


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"recipients": []}, {"recipients": ["This list may not be empty."]}),
        ({"recipients": "a@example.com"}, {"recipients": ['Expected a list of items but got type "str".']}),
        ({"template": "nope"}, {"template": ['"nope" is not a valid choice.']}),
        ({"context": [1]}, {"context": ['Expected a dictionary of items but got type "list".']}),
        ({"description": ""}, {"description": ["This field may not be blank."]}),
        (
            {"recipients": ["bad"]},
            {"recipients": {"0": ["“bad” is not a valid e-mail address."]}},
        ),
        (
            {"description": "   "},
            {"description": ["This field may not be blank."]},
        ),
        (
            {"reserved_at": "2030-01-01T00:00:00Z"},
            {"reserved_at": ["Unknown field. To reserve the mail for later, use scheduled_at."]},
        ),
    ],
)
def test_patch_bad_input_is_400_and_changes_nothing(api, user, django_capture_on_commit_callbacks, body, expected):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = row(task)
    response = api.patch(f"/api/tasks/{task.pk}/", body, format="json")
    assert (response.status_code, response.json()) == (400, expected)
    assert row(task) == before


def test_patch_description_too_big_a_number_is_400(api, user, django_capture_on_commit_callbacks):
    """JSON's 1e400 reads as infinity; a CharField would keep it as the text "inf"."""
    task = reserve(user, django_capture_on_commit_callbacks)
    before = row(task)
    response = api.patch(f"/api/tasks/{task.pk}/", '{"description": 1e400}', content_type="application/json")
    assert (response.status_code, response.json()) == (400, {"description": ["Not a valid string."]})
    assert row(task) == before


def test_patch_of_other_users_task_is_404(api, other_user, django_capture_on_commit_callbacks):
    task = reserve(other_user, django_capture_on_commit_callbacks)
    before = row(task)
    response = api.patch(f"/api/tasks/{task.pk}/", {"description": "mine"}, format="json")
    assert (response.status_code, response.json()) == (
        404,
        {"detail": "No Task matches the given query.", "code": "not_found"},
    )
    assert row(task) == before


# --- the task page's Edit form ----------------------------------------------------------------------


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def local_input(dt):
    """What the datetime-local picker holds (the user's zone is Asia/Seoul)."""
    return timezone.localtime(dt, timezone=timezone.get_fixed_timezone(9 * 60)).strftime("%Y-%m-%dT%H:%M")


def shown_form(client, task):
    """The edit form's fields as the page renders them."""
    response = client.get(f"/tasks/{task.pk}/edit/")
    assert response.status_code == 200
    form = response.context["form"]
    values = {name: form[name].value() for name in form.fields}
    # The picker's value: the form gives the time naive, already in the user's zone.
    return {k: v.strftime("%Y-%m-%dT%H:%M") if hasattr(v, "tzinfo") else v for k, v in values.items() if v is not None}


def test_task_page_links_to_the_edit_form_only_while_reserved(signed_in, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    assert f'href="/tasks/{task.pk}/edit/"' in signed_in.get(f"/tasks/{task.pk}/").content.decode()
    Task.objects.filter(pk=task.pk).update(status="running")
    assert "/edit/" not in signed_in.get(f"/tasks/{task.pk}/").content.decode()
    response = signed_in.get(f"/tasks/{task.pk}/edit/", follow=True)
    assert response.redirect_chain == [(f"/tasks/{task.pk}/", 302)]
    assert f"Mail #{task.pk} can no longer be edited: it is running." in response.content.decode()


def test_edit_form_is_prefilled_from_the_task_in_the_users_zone(signed_in, user, django_capture_on_commit_callbacks):
    mail = MailSpec(
        template="welcome",
        recipients=("Ann <a@example.com>", "b@example.com"),
        context={"name": "Ann", "site_name": "Shop", "extra": [1, 2]},
    )
    due = timezone.now() + timedelta(hours=3)
    with django_capture_on_commit_callbacks(execute=True):
        task = services.reserve_task(owner=user, scheduled_at=due, mail=mail, description="Hello")
    values = shown_form(signed_in, task)
    assert values["recipients"] == "Ann <a@example.com>\nb@example.com"
    assert (values["template"], values["description"]) == ("welcome", "Hello")
    assert (values["ctx_name"], values["ctx_site_name"]) == ("Ann", "Shop")
    assert values["context"] == '{"extra": [1, 2]}'
    assert "reserve" not in values
    rendered = signed_in.get(f"/tasks/{task.pk}/edit/").content.decode()
    assert f'value="{local_input(due)}"' in rendered


def test_edit_form_saves_context_and_time_and_moves_the_job(
    signed_in, user, redis_conn, django_capture_on_commit_callbacks
):
    task = reserve(user, django_capture_on_commit_callbacks)
    later = (timezone.now() + timedelta(hours=4)).replace(second=0, microsecond=0)
    data = {**shown_form(signed_in, task), "ctx_name": "Edited", "scheduled_at": local_input(later)}
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/tasks/{task.pk}/edit/", data, follow=True)
    assert response.redirect_chain == [(f"/tasks/{task.pk}/", 302)]
    assert f"Mail #{task.pk} saved; it will be sent at" in response.content.decode()
    assert row(task) == {
        "status": "reserved",
        "template": "welcome",
        "recipients": ["a@example.com", "b@example.com"],
        "context": {"name": "Edited"},
        "description": "June news",
        "reserved_at": later,
    }
    assert scheduled_score(redis_conn, task.pk) == scheduler.release_time(later).timestamp()


def test_edit_page_previews_the_edited_mail_and_saves_nothing(signed_in, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = row(task)
    data = {**shown_form(signed_in, task), "ctx_name": "Edited <Ann>", "preview_recipient": "b@example.com"}
    page = signed_in.post(f"/tasks/{task.pk}/edit/", {**data, "action": "preview"}).content.decode()
    assert '<dd id="preview-to">b@example.com</dd>' in page
    assert '<dd id="preview-subject">Welcome to reservemail, Edited &lt;Ann&gt;</dd>' in page
    assert 'value="Edited &lt;Ann&gt;"' in page, "the form keeps the edit, to be saved next"
    assert row(task) == before and Task.objects.count() == 1
    url = f"/tasks/{task.pk}/edit/"
    missing = signed_in.post(url, {**data, "action": "preview", "description": ""}).content.decode()
    assert "Nothing to preview yet. Please correct the marked fields." in missing
    wrong = signed_in.post(url, {**data, "action": "preview", "recipients": "nope"}).content.decode()
    assert "“nope” is not a valid e-mail address." in wrong  # the service's refusal, on its field
    assert 'id="mail-preview"' not in missing + wrong and row(task) == before


def test_edit_page_sends_a_test_of_the_edited_mail_once_per_page(signed_in, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = row(task)
    page = signed_in.get(f"/tasks/{task.pk}/edit/").content.decode()
    token = token_of_test_button(page)
    data = {**shown_form(signed_in, task), "ctx_name": "Edited", "action": "test", "test_submission": token}
    with django_capture_on_commit_callbacks(execute=True):
        first = signed_in.post(f"/tasks/{task.pk}/edit/", data).content.decode()
        twin = signed_in.post(f"/tasks/{task.pk}/edit/", data).content.decode()
    test = Task.objects.get(is_test=True)
    assert (test.recipients, test.context) == (["alice@example.com"], {"name": "Edited"})
    assert f"Test #{test.pk} is being sent to alice@example.com." in first
    assert "This test was already sent; nothing more was sent." in twin
    assert row(task) == before, "a test changes nothing of the reservation"


def test_edit_form_unchanged_time_and_recipients_are_kept_exactly(
    signed_in, user, redis_conn, django_capture_on_commit_callbacks
):
    """The picker shows minutes; a time left as shown keeps its seconds, recipients left as shown keep their data."""
    mail = MailSpec(
        template="welcome",
        recipients=({"address": "d@example.com", "name": "Dee", "context": {"name": "D"}},),
        context={},
    )
    due = timezone.now().replace(second=42) + timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        task = services.reserve_task(owner=user, scheduled_at=due, mail=mail, description="Hello")
    score = scheduled_score(redis_conn, task.pk)
    data = shown_form(signed_in, task)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = signed_in.post(f"/tasks/{task.pk}/edit/", {**data, "description": "Hi"})
    assert response.status_code == 302
    assert queue_calls(callbacks) == []
    assert row(task)["reserved_at"] == due and task.description == "Hi"
    assert task.recipients == [{"address": "d@example.com", "name": "Dee", "context": {"name": "D"}}]
    assert scheduled_score(redis_conn, task.pk) == score


def test_edit_form_shows_errors_and_changes_nothing(signed_in, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = row(task)
    data = shown_form(signed_in, task)
    past = local_input(timezone.now() - timedelta(hours=1))
    response = signed_in.post(
        f"/tasks/{task.pk}/edit/", {**data, "recipients": "nope", "context": "[1]", "scheduled_at": past}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors["context"] == ['Enter a JSON object, e.g. {"name": "Alice"}.']
    assert errors["scheduled_at"] == ["This time has already passed. Choose a time in the future."]
    response = signed_in.post(f"/tasks/{task.pk}/edit/", {**data, "recipients": "nope"})
    assert response.context["form"].errors["recipients"] == ["“nope” is not a valid e-mail address."]
    assert row(task) == before


def test_edit_form_when_the_send_started_meanwhile_says_so(signed_in, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    data = shown_form(signed_in, task)
    Task.objects.filter(pk=task.pk).update(status="running")  # the worker claimed it while the form was open
    before = row(task)
    response = signed_in.post(f"/tasks/{task.pk}/edit/", {**data, "ctx_name": "late"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        f"Task #{task.pk} is already being sent and can no longer be changed."
    ]
    assert [m.message for m in response.context["messages"]] == ["The reservation was not changed."]  # no field to mark
    assert row(task) == before


def test_edit_form_of_other_users_task_is_404(signed_in, other_user, django_capture_on_commit_callbacks):
    task = reserve(other_user, django_capture_on_commit_callbacks)
    assert signed_in.get(f"/tasks/{task.pk}/edit/").status_code == 404
    assert signed_in.post(f"/tasks/{task.pk}/edit/", {"description": "mine"}).status_code == 404
    assert row(task)["description"] == "June news"


# --- the admin ------------------------------------------------------------------------------------


def test_admin_edits_a_reservation_through_the_service(
    admin_client, user, redis_conn, django_capture_on_commit_callbacks
):
    task = reserve(user, django_capture_on_commit_callbacks)
    change = f"/admin/tasks/task/{task.pk}/change/"
    page = admin_client.get(change).content.decode()
    assert f'href="/admin/tasks/task/{task.pk}/edit/"' in page and 'name="_save"' not in page  # still read-only
    response = admin_client.get(f"/admin/tasks/task/{task.pk}/edit/")
    form = response.context["form"]
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["scheduled_at"] = data["scheduled_at"].strftime("%Y-%m-%dT%H:%M")
    later = timezone.localtime(timezone.now() + timedelta(days=1)).replace(second=0, microsecond=0)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/tasks/task/{task.pk}/edit/",
            {**data, "ctx_name": "Admin", "description": "Fixed", "scheduled_at": later.strftime("%Y-%m-%dT%H:%M")},
            follow=True,
        )
    assert response.redirect_chain == [(change, 302)]
    assert [m.message for m in response.context["messages"]] == [f"Mail #{task.pk} saved."]
    assert row(task) == {
        "status": "reserved",
        "template": "welcome",
        "recipients": ["a@example.com", "b@example.com"],
        "context": {"name": "Admin"},
        "description": "Fixed",
        "reserved_at": later,
    }
    assert "edited by staff: context, description, reserved_at; rescheduled from" in task.log
    assert scheduled_score(redis_conn, task.pk) == scheduler.release_time(later).timestamp()


def test_admin_edit_errors_are_form_errors_and_change_nothing(admin_client, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    before = row(task)
    response = admin_client.get(f"/admin/tasks/task/{task.pk}/edit/")
    form = response.context["form"]
    data = {name: form[name].value() for name in form.fields if form[name].value() is not None}
    data["scheduled_at"] = data["scheduled_at"].strftime("%Y-%m-%dT%H:%M")
    response = admin_client.post(f"/admin/tasks/task/{task.pk}/edit/", {**data, "recipients": "nope"})
    assert response.status_code == 200
    assert response.context["form"].errors["recipients"] == ["“nope” is not a valid e-mail address."]
    Task.objects.filter(pk=task.pk).update(status="running")
    response = admin_client.post(f"/admin/tasks/task/{task.pk}/edit/", {**data, "ctx_name": "late"})
    assert response.context["form"].non_field_errors() == [
        f"Task #{task.pk} is already being sent and can no longer be changed."
    ]
    assert row(task) == {**before, "status": "running"}
    page = admin_client.get(f"/admin/tasks/task/{task.pk}/change/").content.decode()
    assert "/edit/" not in page
    response = admin_client.get(f"/admin/tasks/task/{task.pk}/edit/", follow=True)
    assert response.redirect_chain == [(f"/admin/tasks/task/{task.pk}/change/", 302)]


def test_admin_edit_needs_the_change_permission(client, django_user_model, user, django_capture_on_commit_callbacks):
    task = reserve(user, django_capture_on_commit_callbacks)
    staff = django_user_model.objects.create_user(username="viewer", password="pw-viewer-123", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_task"))
    client.force_login(staff)
    assert "/edit/" not in client.get(f"/admin/tasks/task/{task.pk}/change/").content.decode()
    assert client.get(f"/admin/tasks/task/{task.pk}/edit/").status_code == 403
    assert client.post(f"/admin/tasks/task/{task.pk}/edit/", {"description": "x"}).status_code == 403
    assert row(task)["description"] == "June news"


# --- ordering against the claim, two connections -----------------------------------------------------


def _in_thread(target):
    """Run ``target`` in a thread with its own database connection; its result or exception lands in the dict."""
    out: dict = {}

    def run():
        try:
            out["result"] = target()
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _due_reservation(user):
    due = timezone.now() + timedelta(minutes=10)
    task = services.reserve_task(owner=user, scheduled_at=due, mail=MAIL, description="June news")
    Task.objects.filter(pk=task.pk).update(reserved_at=timezone.now() - timedelta(seconds=1))  # due now
    return task


def test_edit_waits_for_an_open_claim_and_is_then_refused(transactional_db, user):
    task = _due_reservation(user)
    claimed, release = threading.Event(), threading.Event()

    def claim():
        with transaction.atomic():
            won = transitions.claim_own(task_id=task.pk, now=timezone.now())
            claimed.set()
            release.wait(10)
        return won

    claimer, claim_out = _in_thread(claim)
    assert claimed.wait(10)
    editor, edit_out = _in_thread(
        lambda: services.edit_reservation(
            owner=user, task_id=task.pk, changes=ReservationChanges(context={"name": "late"})
        )
    )
    editor.join(0.5)
    assert editor.is_alive(), "the edit must wait for the claim's transaction"
    release.set()
    claimer.join(10)
    editor.join(20)
    assert claim_out == {"result": True}
    assert isinstance(edit_out.get("error"), TaskStateError) and edit_out["error"].code == "task_running"
    assert row(task)["context"] == {"name": "A"}


def test_claim_waits_for_an_open_edit_and_then_reads_the_edited_row(transactional_db, user):
    task = _due_reservation(user)
    edited, release = threading.Event(), threading.Event()

    def edit():
        with transaction.atomic():
            services.edit_reservation(
                owner=user,
                task_id=task.pk,
                changes=ReservationChanges(context={"name": "first"}, recipients=["z@example.com"]),
            )
            edited.set()
            release.wait(10)

    def claim():
        with transaction.atomic():
            won = transitions.claim_own(task_id=task.pk, now=timezone.now())
            return won, Task.objects.filter(pk=task.pk).values_list("context", "recipients").get()

    editor, edit_out = _in_thread(edit)
    assert edited.wait(10)
    claimer, claim_out = _in_thread(claim)
    claimer.join(0.5)
    assert claimer.is_alive(), "the claim must wait for the edit's transaction"
    release.set()
    editor.join(10)
    claimer.join(20)
    assert edit_out == {"result": None}
    assert claim_out == {"result": (True, ({"name": "first"}, ["z@example.com"]))}


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_edit_form_recipients_typed_back_as_a_browser_sends_them_keep_their_data(
    signed_in, user, django_capture_on_commit_callbacks, newline
):
    """A browser sends a textarea's line breaks as CRLF: recipients left as shown are still unchanged."""
    own = {"address": "r2@example.com", "name": "", "context": {"name": "Own"}}
    mail = MailSpec(template="welcome", recipients=("r1@example.com", own), context={"name": "Shared"})
    due = timezone.now() + timedelta(hours=2)
    with django_capture_on_commit_callbacks(execute=True):
        task = services.reserve_task(owner=user, scheduled_at=due, mail=mail, description="Hello")
    data = shown_form(signed_in, task)
    typed = newline.join(data["recipients"].split("\n")) + newline  # a trailing line break too
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/tasks/{task.pk}/edit/", {**data, "recipients": typed, "description": "Hi"})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.description == "Hi"
    assert task.recipients == ["r1@example.com", {"address": "r2@example.com", "context": {"name": "Own"}}]
    assert "recipients" not in task.log


def test_edit_form_with_a_csv_text_posted_takes_its_recipients(signed_in, user, django_capture_on_commit_callbacks):
    """The edit page has no file field; a posted CSV text is read as the mail form reads it, not a 500."""
    task = reserve(user, django_capture_on_commit_callbacks)
    data = {**shown_form(signed_in, task), "recipients": "", "recipients_csv": "email,name\nc@example.com,Cee\n"}
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(f"/tasks/{task.pk}/edit/", data)
    assert response.status_code == 302
    task.refresh_from_db()
    assert [entry["address"] if isinstance(entry, dict) else entry for entry in task.recipients] == ["c@example.com"]
