"""reservemail.admin_base: an action POST whose selection is not a key of the model is refused, not a 500."""

import pytest
from django.contrib import admin

from reservemail import admin_base
from tasks.models import Task

pytestmark = pytest.mark.django_db

OURS = ["tasks", "series", "notifications", "subscriptions", "preferences"]


def test_every_admin_of_ours_checks_the_selection():
    ours = [m for m in admin.site._registry if m._meta.app_label in OURS]
    assert len(ours) == 5
    assert all(isinstance(admin.site._registry[m], admin_base.ModelAdmin) for m in ours)


# Each admin with actions, and one of them (the notifications admin is read-only: it has none).
ACTIONS = [
    ("tasks/task", "cancel_selected"),
    ("series/series", "pause_selected"),
    ("subscriptions/suppression", "delete_selected"),
    ("preferences/userpreference", "delete_selected"),
]


@pytest.mark.parametrize(("app_model", "action"), ACTIONS)
@pytest.mark.parametrize("forged", ["abc", "1 OR 1=1", "9" * 40, "-1e3"])
def test_a_forged_selection_is_an_error_message(admin_client, app_model, action, forged):
    url = f"/admin/{app_model}/"
    response = admin_client.post(url, {"action": action, "_selected_action": ["1", forged], "index": "0"})
    assert response.status_code == 302 and response["Location"] == url
    [message] = [str(m) for m in admin_client.get(url).context["messages"]]
    assert message.startswith(f"Nothing was changed: “{forged[:40]}” is not the id of a")


def test_a_real_selection_still_reaches_the_action(admin_client, user):
    task = Task.objects.create(owner=user, template="welcome", recipients=[], description="x", status="finished")
    response = admin_client.post(
        "/admin/tasks/task/", {"action": "cancel_selected", "_selected_action": [str(task.pk)], "index": "0"}
    )
    assert response.status_code == 302
    messages = [str(m) for m in admin_client.get("/admin/tasks/task/").context["messages"]]
    assert not any(m.startswith("Nothing was changed: “") for m in messages), messages  # the action ran and answered
    assert Task.objects.get(pk=task.pk).status == "finished"
