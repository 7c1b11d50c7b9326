"""merge_notification and dismiss_entries against the real test database."""

import pytest
from django.utils import timezone

from notifications.models import Notification
from notifications.payload import PayloadError
from notifications.services import dismiss_entries, merge_notification

pytestmark = pytest.mark.django_db


def data_of(user, name):
    return Notification.objects.get(owner=user, name=name).payload["data"]


def test_merge_notification_creates_then_replaces_and_appends_by_task_id(user):
    first = merge_notification(
        owner_id=user.pk, name="task_progress", data={"task_id": 1, "status": "running", "progress": 0}
    )
    second = merge_notification(owner_id=user.pk, name="task_progress", data={"task_id": 2, "status": "queued"})
    third = merge_notification(
        owner_id=user.pk, name="task_progress", data={"task_id": 1, "status": "running", "progress": 40}
    )
    assert data_of(user, "task_progress") == [
        {"task_id": 1, "status": "running", "progress": 40},
        {"task_id": 2, "status": "queued"},
    ]
    assert first.timestamp < second.timestamp < third.timestamp
    assert Notification.objects.filter(owner=user).count() == 1


def test_merge_notification_replaces_the_value_of_other_kinds(user):
    merge_notification(owner_id=user.pk, name="unread_message_count", data=3)
    row = merge_notification(owner_id=user.pk, name="unread_message_count", data=5)
    row.refresh_from_db()
    assert row.payload == {"data": 5}


def test_merge_notification_stamps_the_end_of_ended_tasks(user):
    before = timezone.now().timestamp()
    merge_notification(
        owner_id=user.pk, name="task_progress", data={"task_id": 1, "status": "finished", "progress": 100}
    )
    (entry,) = data_of(user, "task_progress")
    assert before <= entry["ended_ts"] <= timezone.now().timestamp()


@pytest.mark.parametrize("data", [{"status": "running"}, [{"task_id": "7"}], [{"task_id": 1}, {"task_id": 1}], ["x"]])
def test_merge_notification_bad_entry_saves_nothing(user, data):
    merge_notification(owner_id=user.pk, name="task_reserve", data={"task_id": 1, "status": "reserved"})
    row = Notification.objects.get(owner=user, name="task_reserve")
    with pytest.raises(PayloadError):
        merge_notification(owner_id=user.pk, name="task_reserve", data=data)
    after = Notification.objects.get(pk=row.pk)
    assert (after.payload, after.timestamp) == (row.payload, row.timestamp)


def test_a_user_with_10000_finished_tasks_does_not_carry_them(user, client):
    """Ended entries leave the list once their grace period is over; the poll stays small."""
    long_ago = timezone.now().timestamp() - 3600
    for start in range(0, 10_000, 1_000):  # 10,000 tasks that finished an hour ago, reported in batches
        batch = [
            {"task_id": i, "status": "finished", "progress": 100, "ended_ts": long_ago}
            for i in range(start, start + 1_000)
        ]
        merge_notification(owner_id=user.pk, name="task_progress", data=batch)
    merge_notification(owner_id=user.pk, name="task_progress", data={"task_id": 20_000, "status": "running"})
    assert data_of(user, "task_progress") == [{"task_id": 20_000, "status": "running"}]
    client.force_login(user)
    body = client.get("/notifications/?since=0").json()
    assert [entry["task_id"] for entry in body[0]["data"]] == [20_000]


def test_poll_hides_entries_whose_grace_ended_since_the_last_write(user, client, settings):
    recently = timezone.now().timestamp() - 30
    merge_notification(
        owner_id=user.pk,
        name="task_progress",
        data=[{"task_id": 1, "status": "finished", "ended_ts": recently}, {"task_id": 2, "status": "running"}],
    )
    client.force_login(user)
    assert [e["task_id"] for e in client.get("/notifications/").json()[0]["data"]] == [1, 2]
    settings.NOTIFICATION_GRACE_SECONDS = 10
    assert [e["task_id"] for e in client.get("/notifications/").json()[0]["data"]] == [2]


def test_dismiss_entries_drops_only_ended_entries_of_the_owner(user, other_user):
    for owner in (user, other_user):
        merge_notification(
            owner_id=owner.pk,
            name="task_progress",
            data=[{"task_id": 1, "status": "finished"}, {"task_id": 2, "status": "running"}],
        )
        merge_notification(owner_id=owner.pk, name="task_reserve", data={"task_id": 1, "status": "finished"})
    untouched = Notification.objects.get(owner=other_user, name="task_progress")
    before = Notification.objects.get(owner=user, name="task_progress").timestamp

    assert dismiss_entries(owner_id=user.pk, task_ids=[1, 2]) == 2

    assert data_of(user, "task_progress") == [{"task_id": 2, "status": "running"}]
    assert data_of(user, "task_reserve") == []
    assert Notification.objects.get(owner=user, name="task_progress").timestamp > before
    assert Notification.objects.get(pk=untouched.pk).payload == untouched.payload


def test_dismiss_entries_without_a_match_changes_no_timestamp(user):
    row = merge_notification(owner_id=user.pk, name="task_progress", data={"task_id": 2, "status": "running"})
    assert dismiss_entries(owner_id=user.pk, task_ids=[2, 99]) == 0
    assert Notification.objects.get(pk=row.pk).timestamp == row.timestamp
