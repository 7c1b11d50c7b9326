"""The edit and the worker's claim are ordered: edits submitted around the due time, two real workers.

For every trial either the edit was accepted and the sink received only the edited content, or it
was refused (TaskStateError) and the sink received the original. Never "accepted" with the old
content sent (nor "refused" with the new one, nor two copies).
"""

import random
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks import services
from tasks.exceptions import TaskStateError
from tasks.mail import MailSpec
from tasks.models import Task
from tests.harness import wait_until

pytestmark = [pytest.mark.e2e]

TRIALS = 120
SPACING = 0.15  # seconds between due times: the two workers' claims overlap with the edits
WINDOW = 0.3  # edits land up to this far before or after the due time


def _body(received):
    message = received.message
    part = message.get_payload(0) if message.is_multipart() else message
    return part.get_payload(decode=True).decode()


def test_edits_around_the_due_time_never_send_the_old_content(transactional_db, user, fast_lead, worker_factory, smtp):
    worker_factory("w1")
    worker_factory("w2")
    rng = random.Random(15)  # noqa: S311 - test timing, not security
    start = timezone.now() + timedelta(seconds=4)
    trials = []
    for i in range(TRIALS):
        due = start + timedelta(seconds=i * SPACING)
        mail = MailSpec(template="welcome", recipients=(f"t{i}@example.com",), context={"name": f"orig{i}x"})
        task = services.reserve_task(owner=user, scheduled_at=due, mail=mail, description=f"race {i}")
        trials.append((due + timedelta(seconds=rng.uniform(-WINDOW, WINDOW)), i, task.pk))
    outcome: dict[int, bool] = {}
    for at, i, task_id in sorted(trials):
        pause = (at - timezone.now()).total_seconds()
        if pause > 0:
            time.sleep(pause)
        try:
            services.edit_reservation(
                owner=user, task_id=task_id, changes=services.ReservationChanges(context={"name": f"edit{i}x"})
            )
            outcome[i] = True
        except TaskStateError:
            outcome[i] = False
    ids = [task_id for _, _, task_id in trials]
    wait_until(
        lambda: Task.objects.filter(pk__in=ids, status="finished").count() == TRIALS,
        timeout=60,
        what="every trial to finish",
    )
    wait_until(lambda: len(smtp.received) >= TRIALS, timeout=10, what="every mail at the sink")
    violations = []
    for i, accepted in sorted(outcome.items()):
        got = smtp.to(f"t{i}@example.com")
        wanted, stale = (f"edit{i}x", f"orig{i}x") if accepted else (f"orig{i}x", f"edit{i}x")
        texts = [(r.message["Subject"], _body(r)) for r in got]
        ok = len(texts) == 1 and all(wanted in s and wanted in b and stale not in s + b for s, b in texts)
        if not ok:
            violations.append((i, "accepted" if accepted else "refused", texts))
    accepted = sum(outcome.values())
    print(  # noqa: T201
        f"\nFAULTS edit-race trials={TRIALS} accepted={accepted} refused={TRIALS - accepted} "
        f"violations={len(violations)}"
    )
    assert violations == []
    assert len(smtp.received) == TRIALS
    # Both outcomes happened, so the edits really raced the claims (else the test proves little).
    assert 0 < accepted < TRIALS
