"""The one oracle of the fault suite: what happened to each task, judged from the rows and the SMTP sink.

Classes:
- exactly_once: FINISHED, every recipient received exactly once.
- failed_reported: FINISHED with ``failed`` set, each recipient not received has a delivery that is
  not SENT (refused with 5xx, or retries exhausted): the owner was told, nothing was lost silently.
- duplicate: some recipient received more than once (always with the same Message-ID, since the
  Message-ID is fixed per recipient before sending); allowed only in the documented lost-reply window.
- canceled_ok: CANCELED while pending, nothing received. refused / missed: CANCELED + failed by
  the Redis-down policy or the missed-reservation policy, nothing received (the owner was told).
- stopped: CANCELED while RUNNING (a stop), some recipients received, none twice.
- canceled_but_sent: CANCELED without ever running, yet something was received.
- finished_but_unsent: FINISHED, some recipient neither received nor reported failed.
- lost: still QUEUED or RESERVED at the end (nothing is sending it).
- stuck: still RUNNING at the end.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from tasks.models import Delivery, Task
from tests.harness import Received

CLASSES = (
    "exactly_once",
    "failed_reported",
    "duplicate",
    "canceled_ok",
    "refused",
    "missed",
    "stopped",
    "canceled_but_sent",
    "finished_but_unsent",
    "lost",
    "stuck",
)
OUTPUT = Path(__file__).resolve().parent.parent.parent / "test-output" / "faults.jsonl"


def classify(task_ids: Iterable[int], received: Sequence[Received]) -> dict[int, str]:
    """Return the class of every task in ``task_ids`` (see the module docstring)."""
    ids = list(task_ids)
    copies = Counter(r.message_id for r in received)
    deliveries: dict[int, dict[str, tuple[str, str]]] = defaultdict(dict)
    for task_id, address, message_id, status in Delivery.objects.filter(task_id__in=ids).values_list(
        "task_id", "address", "message_id", "status"
    ):
        deliveries[task_id][address] = (message_id, status)
    classes = {}
    for task in Task.objects.filter(pk__in=ids).only("pk", "status", "failed", "log", "recipients", "started_at"):
        rows = deliveries[task.pk]
        got = {address: copies[rows[address][0]] if address in rows else 0 for address in task.recipients}
        classes[task.pk] = _class_of(task, rows, got)
    return classes


def _class_of(task: Task, rows: dict[str, tuple[str, str]], got: dict[str, int]) -> str:
    if task.status in (Task.Status.QUEUED, Task.Status.RESERVED):
        return "lost"
    if task.status == Task.Status.RUNNING:
        return "stuck"
    if any(n > 1 for n in got.values()):
        return "duplicate"
    sent_any = any(got.values())
    if task.status == Task.Status.CANCELED:
        if sent_any:
            return "stopped" if task.started_at else "canceled_but_sent"
        if task.failed and "queue unavailable" in task.log:
            return "refused"
        if task.failed and "missed:" in task.log:
            return "missed"
        return "canceled_ok"
    unsent = [address for address, n in got.items() if n == 0]
    if not unsent:
        return "exactly_once"
    if task.failed and all(rows.get(a, ("", "pending"))[1] != Delivery.Status.SENT for a in unsent):
        return "failed_reported"
    return "finished_but_unsent"


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def lateness_figures(late: Sequence[float]) -> dict[str, float | int | None]:
    """min/p50/p99/max of lateness in seconds, and how many were early (negative)."""

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {
        "late_min": r(min(late) if late else None),
        "late_p50": r(percentile(late, 50)),
        "late_p99": r(percentile(late, 99)),
        "late_max": r(max(late) if late else None),
        "early": sum(1 for v in late if v < 0),
    }


def report(case: str, classes: dict[int, str], capsys, **figures: object) -> Counter:  # noqa: ANN001
    """Print the case's one summary line (outside pytest's capture) and append it to test-output/faults.jsonl."""
    counts = Counter(classes.values())
    size = "full" if os.environ.get("FAULTS_FULL", "") not in ("", "0") else "default"
    line = {"case": case, "size": size, "tasks": len(classes), **{c: counts.get(c, 0) for c in CLASSES}, **figures}
    shown = " ".join(f"{k}={v}" for k, v in line.items() if v not in (0, None) or k in ("lost", "duplicate"))
    with capsys.disabled():
        print(f"\nFAULTS {shown}")  # noqa: T201
    OUTPUT.parent.mkdir(exist_ok=True)
    with OUTPUT.open("a") as out:
        out.write(json.dumps({"at": round(time.time()), **line}) + "\n")
    return counts
