"""Run by test_concurrency.py in separate processes: merge entries into one user's list at once.

Usage: python -m tests.notifications.concurrent_merge OWNER_ID FIRST_TASK_ID COUNT GO_FILE
Prints "ready" once Django is set up, waits (bounded) for GO_FILE, then merges COUNT entries.
"""

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reservemail.settings_test")


def main() -> int:
    import django

    django.setup()
    from notifications.services import merge_notification

    owner_id, first, count = (int(x) for x in sys.argv[1:4])
    go = Path(sys.argv[4])
    print("ready", flush=True)  # noqa: T201
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            return 2
        time.sleep(0.005)
    for task_id in range(first, first + count):
        merge_notification(owner_id=owner_id, name="task_progress", data={"task_id": task_id, "status": "running"})
        merge_notification(owner_id=owner_id, name="task_reserve", data={"task_id": task_id, "status": "reserved"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
