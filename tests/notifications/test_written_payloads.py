"""The bulk merge reuses the payload this process wrote last only while the row still holds it.

notifications.services keeps each row's last written payload with its timestamp, and the bulk
merge (a worker finishing a slice) reads a row's payload again only if the timestamp differs.
These tests change rows by every other way there is (another writer's commit, simulated by a
plain UPDATE with a new timestamp; a rolled-back merge; the other service functions) and check
that the next merge starts from what the database holds.
"""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from notifications.models import Notification
from notifications.services import _WrittenPayloads, dismiss_entries, merge_notification, merge_notifications

pytestmark = pytest.mark.django_db(transaction=True)  # the kept payloads are those of committed writes


def data_of(user, name="task_progress"):  # noqa: ANN001, ANN201
    return Notification.objects.get(owner=user, name=name).payload["data"]


def entry(task_id: int, status: str = "running", progress: int = 0) -> dict:
    return {"task_id": task_id, "status": status, "progress": progress}


def payload_reads(queries: CaptureQueriesContext) -> list[str]:
    column = connection.ops.quote_name("payload")
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT") and column in q["sql"]]


def test_the_next_merge_of_a_row_this_process_wrote_does_not_read_its_payload(user, other_user):
    merge_notifications(changes=[(user.pk, "task_progress", [entry(1)]), (other_user.pk, "task_progress", [entry(2)])])
    with CaptureQueriesContext(connection) as queries:
        merge_notifications(
            changes=[(user.pk, "task_progress", [entry(1, progress=50)]), (other_user.pk, "task_progress", [entry(3)])]
        )
    assert payload_reads(queries) == []
    assert data_of(user) == [entry(1, progress=50)]
    assert data_of(other_user) == [entry(2), entry(3)]


def test_a_row_another_writer_changed_is_read_again(user):
    merge_notifications(changes=[(user.pk, "task_progress", [entry(1)])])
    row = Notification.objects.get(owner=user, name="task_progress")
    # another process's merge: a new payload under a new, later timestamp
    Notification.objects.filter(pk=row.pk).update(payload={"data": [entry(1), entry(9)]}, timestamp=row.timestamp + 1)
    with CaptureQueriesContext(connection) as queries:
        merge_notifications(changes=[(user.pk, "task_progress", [entry(2)])])
    assert len(payload_reads(queries)) == 1
    assert data_of(user) == [entry(1), entry(9), entry(2)]


def test_a_rolled_back_merge_is_not_taken_for_the_rows_content(user):
    merge_notifications(changes=[(user.pk, "task_progress", [entry(1)])])
    with pytest.raises(RuntimeError), transaction.atomic():
        merge_notifications(changes=[(user.pk, "task_progress", [entry(5)])])
        raised_to = Notification.objects.get(owner=user, name="task_progress").timestamp
        raise RuntimeError("the caller's transaction fails after the merge")
    assert data_of(user) == [entry(1)]
    # Another process commits under the very timestamp the rolled-back merge had computed (both
    # took "last + 1e-6" because the stored stamp was ahead of their clocks): still read again.
    row = Notification.objects.get(owner=user, name="task_progress")
    Notification.objects.filter(pk=row.pk).update(payload={"data": [entry(1), entry(9)]}, timestamp=raised_to)
    merge_notifications(changes=[(user.pk, "task_progress", [entry(2)])])
    assert data_of(user) == [entry(1), entry(9), entry(2)]


def test_the_one_row_merge_and_dismiss_keep_the_bulk_merge_right(user):
    merge_notifications(changes=[(user.pk, "task_progress", [entry(1, "finished", 100), entry(2)])])
    merge_notification(owner_id=user.pk, name="task_progress", data=entry(3))
    merge_notifications(changes=[(user.pk, "task_progress", [entry(2, progress=10)])])
    assert [e["task_id"] for e in data_of(user)] == [1, 2, 3]
    assert dismiss_entries(owner_id=user.pk, task_ids=[1]) == 1
    merge_notifications(changes=[(user.pk, "task_progress", [entry(4)])])
    assert [e["task_id"] for e in data_of(user)] == [2, 3, 4]
    assert data_of(user)[0]["progress"] == 10


def test_the_kept_payloads_are_bounded_oldest_used_first_out() -> None:
    kept = _WrittenPayloads()
    lists = {pk: {"data": [entry(i) for i in range(999)]} for pk in range(1, 12)}  # 1,000 each: room for 10
    for pk, payload in lists.items():
        kept.put(pk, float(pk), payload)
        if pk == 2:
            assert kept.get(1, 1.0) is lists[1]  # used: no longer the oldest
    assert kept.get(2, 2.0) is None  # the least recently used went first
    assert kept.get(1, 1.0) is lists[1]
    assert kept.get(11, 11.0) is lists[11]
    assert kept.get(11, 12.0) is None  # another timestamp: not this payload
    assert sum(kept.get(pk, float(pk)) is not None for pk in lists) == 10


def test_the_one_row_merge_reads_the_payload_only_when_another_writer_changed_it(user):
    merge_notification(owner_id=user.pk, name="task_reserve", data=entry(1, "reserved"))
    with CaptureQueriesContext(connection) as queries:
        merge_notification(owner_id=user.pk, name="task_reserve", data=entry(2, "reserved"))
    assert payload_reads(queries) == []
    row = Notification.objects.get(owner=user, name="task_reserve")
    Notification.objects.filter(pk=row.pk).update(payload={"data": [entry(9, "reserved")]}, timestamp=row.timestamp + 1)
    with CaptureQueriesContext(connection) as queries:
        merge_notification(owner_id=user.pk, name="task_reserve", data=entry(3, "reserved"))
    assert len(payload_reads(queries)) == 1
    assert [e["task_id"] for e in data_of(user, "task_reserve")] == [9, 3]
