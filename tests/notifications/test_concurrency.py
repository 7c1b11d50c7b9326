"""Concurrent merges from separate processes into the same rows lose nothing (real database)."""

import subprocess
import sys

import pytest

from notifications.models import Notification
from tests.conftest import database_url
from tests.harness import ROOT, worker_env

pytestmark = [pytest.mark.e2e]

PROCESSES = 4
PER_PROCESS = 25


@pytest.mark.parametrize("mode", ["single", "bulk"])
def test_concurrent_merges_from_separate_processes_keep_every_entry(
    transactional_db, user, django_user_model, tmp_path, redis_server, mode
):
    """Four processes merge into the same rows at once; ``bulk`` (a worker finishing a slice) also
    creates the rows of owners who had none, all four at the same moment."""
    owners = [user] + [django_user_model.objects.create_user(f"fresh{n}", password="x" * 12) for n in range(3)]
    go = tmp_path / "go"
    env = worker_env(redis_url=redis_server.url, database_url=database_url(), smtp_port=None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.notifications.concurrent_merge",
                ",".join(str(owner.pk) for owner in owners),
                str(1 + n * 1000),
                str(PER_PROCESS),
                str(go),
                *(["bulk"] if mode == "bulk" else []),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        for n in range(PROCESSES)
    ]
    try:
        for proc in procs:  # every process is set up and connected before any of them writes
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.touch()
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err[-3000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    expected = {1 + n * 1000 + i for n in range(PROCESSES) for i in range(PER_PROCESS)}
    for owner in owners:
        for name in ("task_progress", "task_reserve"):
            row = Notification.objects.get(owner=owner, name=name)
            ids = [entry["task_id"] for entry in row.payload["data"]]
            assert len(ids) == len(set(ids)) == PROCESSES * PER_PROCESS, f"{owner} {name}: {len(ids)} entries"
            assert set(ids) == expected
        assert Notification.objects.filter(owner=owner).count() == 2
