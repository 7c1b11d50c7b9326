"""Fixtures of the subscriptions tests."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.harness import ROOT, worker_env


@pytest.fixture
def unsubscribe_mail(redis_server):  # noqa: ANN001, ANN201
    """Run `manage.py unsubscribe_mail` in a subprocess with ``message`` on its standard input."""

    def run(message: bytes, *, database: str) -> subprocess.CompletedProcess:
        env = worker_env(redis_url=redis_server.url, database_url=database, smtp_port=None)
        return subprocess.run(  # noqa: S603 - fixed argv
            [sys.executable, "manage.py", "unsubscribe_mail"],
            input=message,
            capture_output=True,
            cwd=ROOT,
            env=env,
            timeout=60,
            check=False,
        )

    return run
