"""purge_tasks (retention, expired idempotency keys) and export_tasks (a user's tasks as CSV)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tasks.models import Delivery, IdempotencyKey, Task
from tasks.services.purge import purge_finished_tasks


def _task(owner, status, *, ended_days_ago=None, created_days_ago=0, **fields):
    now = timezone.now()
    task = Task.objects.create(
        owner=owner,
        description=fields.pop("description", status),
        template="welcome",
        recipients=fields.pop("recipients", ["a@example.com"]),
        status=status,
        ended_at=now - timedelta(days=ended_days_ago) if ended_days_ago is not None else None,
        **fields,
    )
    Task.objects.filter(pk=task.pk).update(created_at=now - timedelta(days=created_days_ago))
    return task


def _deliver(task, *addresses, status="sent"):
    for address in addresses:
        Delivery.objects.create(task=task, address=address, status=status, message_id=f"<{address}>")


@pytest.fixture
def history(user):
    old_done = _task(user, "finished", ended_days_ago=100, created_days_ago=100)
    _deliver(old_done, "a@example.com", "b@example.com")
    old_canceled = _task(user, "canceled", ended_days_ago=95, created_days_ago=120)
    old_canceled_no_end = _task(user, "canceled", created_days_ago=200)
    recent_done = _task(user, "finished", ended_days_ago=10, created_days_ago=10)
    _deliver(recent_done, "c@example.com")
    old_reserved = _task(
        user, "reserved", created_days_ago=300, reserved_at=timezone.now() + timedelta(days=1)
    )  # pending: never purged
    old_running = _task(user, "running", created_days_ago=300)
    return {
        "purged": {old_done.pk, old_canceled.pk, old_canceled_no_end.pk},
        "kept": {recent_done.pk, old_reserved.pk, old_running.pk},
    }


@pytest.mark.django_db
def test_purge_tasks_deletes_old_ended_tasks_and_their_deliveries_only(history):
    out = io.StringIO()
    call_command("purge_tasks", "--days", "90", stdout=out)
    assert out.getvalue() == "Deleted 3 task(s) and 2 delivery row(s) older than 90 day(s).\n"
    assert set(Task.objects.values_list("pk", flat=True)) == history["kept"]
    assert list(Delivery.objects.values_list("address", flat=True)) == ["c@example.com"]


@pytest.mark.django_db
def test_purge_tasks_deletes_expired_idempotency_keys_only(user, settings):
    """Stored answers past IDEMPOTENCY_KEY_TTL are never replayed: purge_tasks drops them, the live ones stay."""
    settings.IDEMPOTENCY_KEY_TTL = 3600
    now = timezone.now()
    for key, age in (("old", timedelta(hours=2)), ("fresh", timedelta(minutes=5))):
        IdempotencyKey.objects.create(
            user=user, key=key, fingerprint="f", response_status=201, response_body={}, created_at=now - age
        )
    out = io.StringIO()
    call_command("purge_tasks", "--days", "90", stdout=out)
    assert out.getvalue().splitlines()[-1] == "Deleted 1 expired idempotency key(s)."
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["fresh"]


@pytest.mark.django_db
def test_purge_tasks_dry_run_counts_and_deletes_nothing(history):
    out = io.StringIO()
    call_command("purge_tasks", "--days", "90", "--dry-run", stdout=out)
    assert out.getvalue() == "Would delete 3 task(s) that ended more than 90 day(s) ago.\n"
    assert Task.objects.count() == 6 and Delivery.objects.count() == 3


@pytest.mark.django_db
def test_purge_tasks_defaults_to_the_retention_setting(history, settings):
    settings.TASK_RETENTION_DAYS = 5
    out = io.StringIO()
    call_command("purge_tasks", stdout=out)
    assert out.getvalue() == "Deleted 4 task(s) and 3 delivery row(s) older than 5 day(s).\n"


@pytest.mark.django_db
def test_purge_in_small_batches_deletes_everything_due(history):
    assert purge_finished_tasks(older_than_days=90, now=timezone.now(), batch_size=1) == (3, 2)
    assert set(Task.objects.values_list("pk", flat=True)) == history["kept"]


@pytest.mark.django_db
@pytest.mark.parametrize("days", ["0", "-3"])
def test_purge_tasks_refuses_less_than_a_day(history, days):
    with pytest.raises(CommandError, match=f"--days must be at least 1 \\(got {days}\\)"):
        call_command("purge_tasks", "--days", days)
    assert Task.objects.count() == 6


@pytest.mark.django_db
def test_export_tasks_writes_the_users_tasks_as_csv(user, other_user, tmp_path):
    first = _task(user, "finished", ended_days_ago=1, description="=HYPERLINK(1)", context={"name": "Kim"})
    _deliver(first, "a@example.com")
    _deliver(first, "b@example.com", status="failed")
    second = _task(
        user, "reserved", reserved_at=timezone.now() + timedelta(days=2), recipients=["x@example.com", "y@example.com"]
    )
    _task(other_user, "finished", ended_days_ago=1, description="not alice's")

    target = tmp_path / "alice.csv"
    err = io.StringIO()
    call_command("export_tasks", "alice", "--output", str(target), stderr=err)
    assert err.getvalue() == f"Exported 2 task(s) of alice to {target}.\n"
    rows = list(csv.DictReader(target.open(newline="", encoding="utf-8")))
    assert [row["id"] for row in rows] == [str(second.pk), str(first.pk)]  # newest first
    assert rows[1]["description"] == "'=HYPERLINK(1)"  # a spreadsheet would run it as a formula
    assert (rows[1]["status"], rows[1]["failed"], rows[1]["sent"], rows[1]["failed_recipients"]) == (
        "finished",
        "no",
        "1",
        "1",
    )
    assert rows[1]["context"] == '{"name": "Kim"}'
    assert rows[0]["recipients"] == "x@example.com;y@example.com"
    assert rows[0]["reserved_at"] == timezone.localtime(second.reserved_at).isoformat()
    assert rows[0]["ended_at"] == ""


@pytest.mark.django_db
def test_export_tasks_to_stdout_and_unknown_user(user):
    _task(user, "queued")
    out = io.StringIO()
    call_command("export_tasks", "alice", stdout=out, stderr=io.StringIO())
    assert out.getvalue().splitlines()[0].startswith("id,description,template,status")
    assert len(out.getvalue().splitlines()) == 2
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("export_tasks", "nobody")
