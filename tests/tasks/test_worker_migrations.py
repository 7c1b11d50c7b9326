"""A worker started before `migrate` takes no job until the database has this code's migrations."""

import subprocess
import sys

import pytest

from tests.harness import ROOT, start_worker, stop_process, wait_until, worker_env

pytestmark = [pytest.mark.e2e]


def _migrate(env: dict[str, str], *target: str) -> None:
    subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "migrate", *target, "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=180,
    )


def test_a_worker_waits_for_the_missing_migrations_then_starts(redis_server, redis_conn, tmp_path) -> None:  # noqa: ANN001
    env = worker_env(
        redis_url=redis_server.url, database_url=f"sqlite:///{tmp_path / 'behind.sqlite3'}", smtp_port=None
    )
    _migrate(env, "tasks", "0007")  # the schema of the release before the run-fence index
    log = tmp_path / "worker.log"
    proc = start_worker(env, name="behind", log_path=log)
    try:
        wait_until(lambda: "tasks.0008_task_run_fence" in log.read_text(), timeout=60, what="the worker to name it")
        assert "run `manage.py migrate`" in log.read_text()
        assert proc.poll() is None  # waiting, not crashed
        assert not redis_conn.exists("rq:worker:behind")  # not registered: RQ hands it no job
        _migrate(env)
        wait_until(lambda: redis_conn.exists("rq:worker:behind"), timeout=60, what="the worker to start")
        assert proc.poll() is None
    finally:
        stop_process(proc)
