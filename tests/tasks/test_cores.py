"""usable_cores (tasks.smtp.cores): the affinity, lowered to a container's CPU quota, read from cgroup files.

Each case writes a cgroup tree (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``) and a /proc/self/cgroup as
the kernel lays them out, and reads them with the function the worker uses.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tasks.smtp.cores import cpu_quota, usable_cores

AFFINITY = len(os.sched_getaffinity(0))


def _tree(tmp_path: Path, proc: str, files: dict[str, str]) -> dict[str, Path]:
    root = tmp_path / "cgroup"
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    root.mkdir(exist_ok=True)
    proc_cgroup = tmp_path / "proc-self-cgroup"
    proc_cgroup.write_text(proc)
    return {"cgroup_root": root, "proc_cgroup": proc_cgroup}


CASES = {
    "v2, no limit": ("0::/\n", {"cpu.max": "max 100000\n"}, None),
    "v2, one and a half CPUs": ("0::/\n", {"cpu.max": "150000 100000\n"}, 1.5),
    "v2, limit on a parent": (
        "0::/system.slice/worker.service\n",
        {
            "cpu.max": "max 100000\n",
            "system.slice/cpu.max": "100000 100000\n",
            "system.slice/worker.service/cpu.max": "max 100000\n",
        },
        1.0,
    ),
    "v2, path missing under the mount (container root)": ("0::/docker/abc\n", {"cpu.max": "200000 100000\n"}, 2.0),
    "v1, no limit": (
        "2:cpu,cpuacct:/\n1:memory:/x\n",
        {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"},
        None,
    ),
    "v1, one CPU": (
        "2:cpu,cpuacct:/docker/abc\n",
        {"cpu/docker/abc/cpu.cfs_quota_us": "50000\n", "cpu/docker/abc/cpu.cfs_period_us": "50000\n"},
        1.0,
    ),
    "no cgroup files": ("0::/\n", {}, None),
    "unreadable values": ("0::/\n", {"cpu.max": "garbage\n"}, None),
}


@pytest.mark.parametrize("name", CASES)
def test_quota_read_from_cgroup_files(tmp_path: Path, name: str) -> None:
    proc, files, expected = CASES[name]
    where = _tree(tmp_path, proc, files)
    assert cpu_quota(**where) == expected
    cores = usable_cores(**where)
    assert cores == (AFFINITY if expected is None else max(1, min(AFFINITY, int(expected))))


def test_a_fraction_of_a_cpu_still_counts_one(tmp_path: Path) -> None:
    where = _tree(tmp_path, "0::/\n", {"cpu.max": "20000 100000\n"})
    assert usable_cores(**where) == 1


def test_no_proc_file_means_the_affinity(tmp_path: Path) -> None:
    assert usable_cores(cgroup_root=tmp_path, proc_cgroup=tmp_path / "missing") == AFFINITY
