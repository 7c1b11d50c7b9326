"""Scenarios that are not mail: reserving (service, API) and the notifications poll."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.procs import Postgres, start_gunicorn
from bench.stats import percentile
from tests.harness import ROOT, free_port, stop_process, wait_until


@dataclass
class ServiceRow:
    scenario: str
    n: int
    rate: float | None = None  # operations/s
    p50_ms: float | None = None
    p99_ms: float | None = None
    queries: str = ""
    notes: list[str] = field(default_factory=list)
    kind: str = ""  # reserve-sqlite, reserve-postgres, poll, api: what the targets look for
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def migrate(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)


def run_reserve(env: dict[str, str], n: int, *, owners: int, label: str) -> tuple[ServiceRow, dict[str, Any]]:
    """``reserve_task`` N times in one fresh process (bench/reserve.py) against env's database."""
    prefix = f"reserver-{uuid.uuid4().hex[:6]}"
    out = subprocess.run(
        [sys.executable, "-m", "bench.reserve", str(n), str(owners), prefix],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    row = ServiceRow(
        scenario=f"reserve_task via the service, 1 process, {label}, {owners} owner(s)",
        n=n,
        rate=result["rate"],
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        notes=[
            f"first 100: {result['first_100_rate']:.0f}/s, last 100: {result['last_100_rate']:.0f}/s",
            f"after one untimed warm-up reservation ({result['warm_up_ms']:.0f} ms)",
        ],
        kind=f"reserve-{label.lower()}-{owners}",
    )
    return row, result


def best_of(rows: list[ServiceRow]) -> ServiceRow:
    """The best of repeated runs of one row (see Bench.keep_best), noting every run's rate."""
    best = max(rows, key=lambda r: r.rate or 0)
    if len(rows) > 1:
        best.notes.append(f"best of {len(rows)} runs ({', '.join(f'{r.rate:.0f}/s' for r in rows if r.rate)})")
    return best


def run_reserve_postgres(env: dict[str, str], n: int, tmp: Path) -> list[ServiceRow]:
    if not Postgres.available():
        row = ServiceRow(scenario="reserve_task via the service, PostgreSQL", n=n, notes=["PostgreSQL not present"])
        return [row]
    pg = Postgres(tmp / "pg")
    try:
        pg.start()
        pg_env = {**env, "DATABASE_URL": pg.url, "DB_CONN_MAX_AGE": "60"}
        migrate(pg_env)
        return [run_reserve(pg_env, n, owners=100, label="PostgreSQL")[0]]
    finally:
        pg.stop()


def run_poll(owner_id: int, unfinished: int, *, repeat: int = 200) -> ServiceRow:
    """GET the poll endpoint through the full middleware stack (test client), timing server work only."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from tasks.models import Task

    def measure(user) -> tuple[list[float], int, int]:  # noqa: ANN001
        url = reverse("notifications:poll")
        client = Client()
        client.force_login(user)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            response = client.get(url, {"since": "0"})
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.status_code
        with CaptureQueriesContext(connection) as ctx:
            response = client.get(url, {"since": "0"})
        entries = sum(len(item["data"]) for item in response.json() if isinstance(item["data"], list))
        return times, len(ctx.captured_queries), entries

    owner = get_user_model().objects.get(pk=owner_id)
    small = get_user_model().objects.create_user(username=f"poll-small-{uuid.uuid4().hex[:6]}", password=None)
    _reserve_few(small, 10)
    times, queries, entries = measure(owner)
    _, small_queries, _ = measure(small)
    count = Task.objects.filter(owner=owner, status__in=["queued", "reserved", "running"]).count()
    return ServiceRow(
        scenario=f"notifications poll, {count} unfinished tasks of 1 user",
        n=repeat,
        rate=repeat / sum(times),
        p50_ms=percentile(times, 50) * 1000,
        p99_ms=percentile(times, 99) * 1000,
        queries=f"{queries} (10 tasks: {small_queries})",
        notes=[f"{entries} entries returned"],
        kind="poll",
        extra={"queries": queries, "queries_10_tasks": small_queries},
    )


def _reserve_few(owner, n: int) -> None:  # noqa: ANN001
    from django.utils import timezone

    from tasks.mail import MailSpec
    from tasks.services import reserve_task

    for i in range(n):
        spec = MailSpec(template="newsletter", recipients=(f"few-{i}@bench.example",), context={})
        reserve_task(owner=owner, scheduled_at=timezone.now() + timedelta(hours=3), mail=spec, description="few")


def api_present() -> bool:
    from django.urls import Resolver404, resolve

    try:
        resolve("/api/tasks/")
        return True
    except Resolver404:
        return False


# The API scenario measures throughput, not the limits: one user posts all n reservations, which
# the default per-user rate (60/min) and daily quota (500) would answer with 429.
API_LIMITS_LIFTED = {"API_CREATE_RATE": "1000000/min", "API_DAILY_SEND_QUOTA": "0"}


def run_api(env: dict[str, str], tmp: Path, *, n: int, clients: int = 32) -> ServiceRow:
    """POST reservations to /api/tasks/ under gunicorn from ``clients`` concurrent keep-alive clients.

    The rate counts 201 answers only, so a run that got refused cannot look fast.
    """
    label = f"API POST /api/tasks/ under gunicorn, {clients} clients"
    if not api_present():
        return ServiceRow(scenario=label, n=0, notes=["API not present on this branch: skipped"], kind="api")
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.create_user(username=f"api-{uuid.uuid4().hex[:6]}", password=None)
    token = Token.objects.create(user=user).key
    port = free_port()
    proc = start_gunicorn({**env, **API_LIMITS_LIFTED}, port=port, workers=4, threads=8, log=tmp / "gunicorn.log")
    latencies: list[float] = []
    codes: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    base = timezone.now() + timedelta(hours=4)
    counter = iter(range(n))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            body = {
                "description": f"api {i}",
                "template": "newsletter",
                "recipients": [f"api-{i}@bench.example"],
                "context": {"title": "API"},
                "scheduled_at": (base + timedelta(seconds=i)).isoformat(),
            }
            t0 = time.perf_counter()
            conn.request("POST", "/api/tasks/", body=json.dumps(body), headers=headers)
            response = conn.getresponse()
            text = response.read()
            took = time.perf_counter() - t0
            with lock:
                latencies.append(took)
                codes[response.status] = codes.get(response.status, 0) + 1
                if response.status >= 300 and len(errors) < 3:
                    errors.append(f"{response.status}: {text[:200]!r}")
        conn.close()

    try:
        wait_until(lambda: _answers(port), timeout=30, what="gunicorn to answer")
        threads = [threading.Thread(target=client) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        elapsed = time.perf_counter() - started
    finally:
        stop_process(proc)
    created = codes.get(201, 0)
    refused = "" if created == len(latencies) else f"NOT all 201: {len(latencies) - created} other answers"
    row = ServiceRow(
        scenario=label,
        n=len(latencies),
        rate=created / elapsed if elapsed else None,
        p50_ms=percentile(latencies, 50) * 1000 if latencies else None,
        p99_ms=percentile(latencies, 99) * 1000 if latencies else None,
        notes=[
            f"status codes {codes}",
            *([refused] if refused else []),
            "gunicorn gthread 4 workers x 8 threads",
            "API_CREATE_RATE and API_DAILY_SEND_QUOTA lifted",
            *errors,
        ],
        kind="api",
    )
    return row


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", "/accounts/login/")
        conn.getresponse().read()
        return True
    except OSError:
        return False
