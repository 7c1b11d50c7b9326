"""reservemail.http.found_or_404: the pages' one "yours or 404" read."""

import pytest
from django.http import Http404

from reservemail.http import found_or_404
from series.selectors import get_series_of
from tasks.exceptions import TaskStateError
from tasks.models import Task
from tasks.selectors import get_task_of

pytestmark = pytest.mark.django_db


def test_found_or_404_returns_the_owners_row(user):
    task = Task.objects.create(owner=user, template="welcome", recipients=[], description="x", status="finished")
    assert found_or_404(get_task_of, user, task.pk) == task


def test_found_or_404_turns_another_users_task_and_series_into_404(user, other_user):
    task = Task.objects.create(owner=other_user, template="welcome", recipients=[], description="x", status="finished")
    with pytest.raises(Http404, match=f"Task #{task.pk} was not found"):
        found_or_404(get_task_of, user, task.pk)
    with pytest.raises(Http404, match="Series #999999 was not found"):
        found_or_404(get_series_of, user, 999999)


def test_found_or_404_lets_other_domain_errors_pass():
    def refuses() -> None:
        raise TaskStateError("no")

    with pytest.raises(TaskStateError):
        found_or_404(refuses)
