"""Reserve N one-recipient newsletters through ``reserve_task`` in this one process; print JSON.

Run as ``python -m bench.reserve N OWNERS PREFIX`` with DATABASE_URL and REDIS_URL set; reservation
i belongs to owner i % OWNERS (users PREFIX-0, PREFIX-1, ...). Each
reservation is the whole service: validation, a rendering check, the row, the owner's
``task_reserve`` notification, and the RQ job scheduled after commit.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import timedelta


def main() -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from tasks.mail import MailSpec
    from tasks.services import reserve_task

    n, owner_count, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    users = get_user_model().objects
    owners = [users.create_user(username=f"{prefix}-{i}", password=None) for i in range(owner_count)]
    context = {"title": "Weekly", "body": "News."}
    base = timezone.now() + timedelta(hours=2)
    # One untimed reservation first, by a user of its own: a process's first call also starts
    # Django's template engine (imports every templatetags module), ~0.2 s paid once per process.
    warm_owner = users.create_user(username=f"{prefix}-warm-up", password=None)
    t0 = time.perf_counter()
    warm = MailSpec(template="newsletter", recipients=("warm-up@bench.example",), context=context)
    reserve_task(owner=warm_owner, scheduled_at=base - timedelta(minutes=30), mail=warm, description="warm-up")
    first = time.perf_counter() - t0
    latencies = []
    started = time.perf_counter()
    for i in range(n):
        spec = MailSpec(template="newsletter", recipients=(f"reserve-{i}@bench.example",), context=context)
        t0 = time.perf_counter()
        owner = owners[i % owner_count]
        reserve_task(owner=owner, scheduled_at=base + timedelta(seconds=i), mail=spec, description=f"news {i}")
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - started
    head, tail = latencies[:100], latencies[-100:]
    latencies.sort()
    print(
        json.dumps(
            {
                "n": n,
                "seconds": elapsed,
                "rate": n / elapsed,
                "p50_ms": latencies[len(latencies) // 2] * 1000,
                "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
                "first_100_rate": len(head) / sum(head),
                "warm_up_ms": first * 1000,
                "last_100_rate": len(tail) / sum(tail),
                "owner_ids": [owner.pk for owner in owners],
            }
        )
    )


if __name__ == "__main__":
    main()
