"""Smoke test of the benchmark (bench/run): it runs end to end at n=50. Figures are not judged."""

import json
import os
import smtplib
import subprocess
import sys

import pytest
from django.db import connection

from bench.procs import Sink, descendants
from tests.harness import ROOT

pytestmark = [pytest.mark.e2e]


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="the bench makes its own databases whatever the suite runs on; the SQLite pass runs it once",
)
def test_benchmark_runs_small_and_loses_nothing(tmp_path):
    out = tmp_path / "bench.json"
    args = [sys.executable, "-m", "bench.bench", "--n", "50", "--big", "300", "--spread", "3", "--json", str(out)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    names = [row["scenario"] for row in result["mail"]]
    assert len(names) >= 8, names
    prefixes = ("ceiling", "parallel ceiling", "smtplib loop", "plain RQ", "reservemail: burst", "ablation")
    for prefix in (*prefixes, "reservemail: 1 task"):
        assert any(name.startswith(prefix) for name in names), (prefix, names)
    for two in ("reservemail: burst", "reservemail: 1 task", "reservemail: 50 tasks"):
        assert any(name.startswith(two) and name.endswith("2 workers") for name in names), (two, names)
    assert result["repeats"], "the ceiling, burst and big task rows are the best of repeated runs"
    for row in result["mail"] + result["repeats"]:
        assert (row["lost"], row["duplicates"]) == (0, 0), row
        if row["scenario"].startswith(("reservemail", "ablation")):
            assert row["early"] == 0, row
    assert all(row["drain"] for row in result["mail"] if row["scenario"].startswith("ceiling"))
    for row in result["mail"]:  # every row measured the CPU its senders, the sink and Redis spent per mail
        assert set(row["cpu_ms"]) == {"senders", "sink", "redis"} and min(row["cpu_ms"].values()) >= 0, row
    # A 12-mail row can take less than one clock tick of the sink; all rows together cannot.
    assert sum(row["cpu_ms"]["senders"] for row in result["mail"]) > 0
    assert sum(row["cpu_ms"]["sink"] for row in result["mail"]) > 0
    kinds = {row["kind"] for row in result["service"]}
    assert {"reserve-sqlite-100", "reserve-sqlite-1", "poll", "api"} <= kinds
    assert len(result["targets"]) >= 9
    assert "| scenario | n | mails/s |" in done.stdout


@pytest.mark.parametrize("mode", ["per-connection", "one-thread"])
def test_sink_records_messages_of_two_open_connections(tmp_path, mode):
    """Two clients at once (as two workers): both recorded; per connection, each served by a child process."""
    sink = Sink(tmp_path, mode=mode).start(dict(os.environ))
    try:
        clients = [smtplib.SMTP("127.0.0.1", sink.port, timeout=10) for _ in range(2)]
        for i, client in enumerate(clients):
            client.ehlo()
            assert client.has_extn("pipelining")
            client.sendmail("from@bench.example", [f"to-{i}@bench.example"], f"Message-ID: <m{i}@x>\r\n\r\nhi\r\n")
        assert sink.proc is not None
        served_by = len(descendants(sink.proc.pid)) - 1
        assert served_by == (2 if mode == "per-connection" else 0)
        for client in clients:
            client.quit()
        arrivals = sink.wait_for(2, timeout=10, idle=5)
        assert sorted((a.message_id, a.rcpts) for a in arrivals) == [
            ("<m0@x>", ["to-0@bench.example"]),
            ("<m1@x>", ["to-1@bench.example"]),
        ]
    finally:
        sink.stop()
    assert sink.proc.poll() is not None
