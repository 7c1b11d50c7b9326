"""A running job reports progress a few times a second at most, not once per recipient."""

import math
import time

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext

from notifications.models import Notification
from tasks import services
from tasks.delivery import run_task
from tasks.mail import MailSpec

pytestmark = pytest.mark.django_db

RECIPIENTS = 1000


def test_progress_writes_are_throttled_on_a_large_task(user, settings):
    settings.TASK_PROGRESS_INTERVAL = 0.2
    addresses = tuple(f"r{i}@example.com" for i in range(RECIPIENTS))
    task = services.enqueue_task(
        owner=user, mail=MailSpec(template="welcome", recipients=addresses, context={}), description="big"
    )
    with CaptureQueriesContext(connection) as queries:
        started = time.monotonic()
        run_task(task_id=task.pk)
        elapsed = time.monotonic() - started
    writes = [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and "notifications_notification" in q["sql"]]
    bound = 2 + math.ceil(elapsed / settings.TASK_PROGRESS_INTERVAL) + 1  # start + one per interval + end
    print(f"{RECIPIENTS} recipients in {elapsed:.2f}s: {len(writes)} progress writes (bound {bound})")  # noqa: T201
    assert len(mail.outbox) == RECIPIENTS
    assert 2 <= len(writes) <= bound
    assert len(writes) < RECIPIENTS / 10
    (entry,) = Notification.objects.get(owner=user, name="task_progress").payload["data"]
    assert (entry["task_id"], entry["status"], entry["progress"]) == (task.pk, "finished", 100)
