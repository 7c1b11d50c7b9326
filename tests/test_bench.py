"""Smoke test of the benchmark (bench/run): it runs end to end at n=50. Figures are not judged."""

import json
import subprocess
import sys

import pytest

from tests.harness import ROOT

pytestmark = [pytest.mark.e2e]


def test_benchmark_runs_small_and_loses_nothing(tmp_path):
    out = tmp_path / "bench.json"
    args = [sys.executable, "-m", "bench.bench", "--n", "50", "--big", "300", "--spread", "3", "--json", str(out)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    names = [row["scenario"] for row in result["mail"]]
    assert len(names) >= 8, names
    for prefix in ("ceiling", "smtplib loop", "plain RQ", "reservemail: burst", "ablation", "reservemail: 1 task"):
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
