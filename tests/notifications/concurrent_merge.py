"""Run by test_concurrency.py in separate processes: merge entries into one user's list at once.

Usage: python -m tests.notifications.concurrent_merge OWNER_IDS FIRST_TASK_ID COUNT GO_FILE [bulk]
Prints "ready" once Django is set up, waits (bounded) for GO_FILE, then merges COUNT entries into
each owner's lists (OWNER_IDS: comma-separated): one merge_notification call per owner and list, or
with ``bulk`` one merge_notifications call per entry for every owner and list at once.
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reservemail.settings_test")


def main() -> int:
    import django

    django.setup()
    from notifications.services import merge_notification, merge_notifications

    owners = [int(x) for x in sys.argv[1].split(",")]
    first, count = int(sys.argv[2]), int(sys.argv[3])
    go = Path(sys.argv[4])
    bulk = sys.argv[5:] == ["bulk"]
    print("ready", flush=True)  # noqa: T201
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            return 2
        time.sleep(0.005)
    for task_id in range(first, first + count):
        progress, reserve = {"task_id": task_id, "status": "running"}, {"task_id": task_id, "status": "reserved"}
        if bulk:
            merge_notifications(
                changes=[
                    (o, name, data)
                    for o in owners
                    for name, data in (("task_progress", progress), ("task_reserve", reserve))
                ]
            )
            continue
        for owner_id in owners:
            merge_notification(owner_id=owner_id, name="task_progress", data=progress)
            merge_notification(owner_id=owner_id, name="task_reserve", data=reserve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
