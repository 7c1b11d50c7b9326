"""Series admin: the changelist with filters, and the actions going through the services."""

from datetime import timedelta

import pytest
from django.utils import timezone

from series import services
from series.models import Series
from tasks.mail import MailSpec
from tasks.models import Task

pytestmark = pytest.mark.django_db

ONE = MailSpec(template="welcome", recipients=("a@example.com",), context={})


def make(user, description="s"):
    start = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    return services.create_series(
        owner=user, mail=ONE, description=description, rule="FREQ=DAILY", zone="Asia/Seoul", start_at=start
    )


def act(admin_client, action, ids):
    return admin_client.post(
        "/admin/series/series/", {"action": action, "_selected_action": [str(i) for i in ids]}, follow=True
    )


def test_changelist_shows_the_summary_and_filters(admin_client, user):
    make(user, "daily digest")
    response = admin_client.get("/admin/series/series/?status__exact=active")
    assert response.status_code == 200
    html = response.content.decode()
    assert "daily digest" in html and "Every day at" in html
    assert admin_client.get("/admin/series/series/add/").status_code == 403


def test_pause_resume_skip_end_actions(admin_client, user):
    first, second = make(user, "one"), make(user, "two")
    response = act(admin_client, "pause_selected", [first.pk, second.pk])
    assert "Done for 2 series." in response.content.decode()
    assert set(Series.objects.values_list("status", flat=True)) == {"paused"}
    assert not Task.objects.filter(status="reserved").exists()
    response = act(admin_client, "pause_selected", [first.pk])
    html = response.content.decode()
    assert "Done for 0 series." in html and f"#{first.pk}: Series #{first.pk} is paused and cannot be paused." in html
    act(admin_client, "resume_selected", [first.pk])
    assert Task.objects.filter(series=first, status="reserved").count() == 1
    before = Series.objects.get(pk=first.pk).next_at
    act(admin_client, "skip_selected", [first.pk])
    assert Series.objects.get(pk=first.pk).next_at == before + timedelta(days=1)
    act(admin_client, "end_selected", [first.pk, second.pk])
    assert set(Series.objects.values_list("status", flat=True)) == {"ended"}
    assert not Task.objects.filter(status="reserved").exists()
