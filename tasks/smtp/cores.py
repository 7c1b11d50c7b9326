"""How many cores this process may keep busy: its CPU affinity, lowered to a cgroup CPU quota.

Why: in a container limited to fewer CPUs than the host has (``docker run --cpus=1``, compose
``cpus: 1``, a Kubernetes CPU limit) the affinity mask still lists every host core; the quota is
what the kernel lets the process use. MailSession.overlap() counts these cores to decide whether
each worker may keep two threads busy. Both cgroup v2 (``cpu.max``) and v1 (``cpu.cfs_quota_us``)
are read, along the process's cgroup and its parents; the smallest limit wins.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def usable_cores(*, cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    """The whole cores this process may use: its affinity, or fewer under a CPU quota (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = cpu_quota(cgroup_root=cgroup_root, proc_cgroup=proc_cgroup)
    if quota is None:
        return cores
    return max(1, min(cores, math.floor(quota)))


def cpu_quota(*, cgroup_root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs the cgroup quota allows (quota / period, the smallest along the cgroup's ancestors); None if unlimited."""
    limits: list[float | None] = []
    for controllers, path in _memberships(proc_cgroup):
        if controllers == "":  # cgroup v2: one hierarchy
            limits += [_v2_limit(directory / "cpu.max") for directory in _ancestors(cgroup_root, path)]
        elif "cpu" in controllers.split(","):
            for base in (cgroup_root / "cpu", cgroup_root / "cpu,cpuacct"):
                limits += [_v1_limit(directory) for directory in _ancestors(base, path)]
    found = [limit for limit in limits if limit is not None]
    return min(found) if found else None


def _memberships(proc_cgroup: Path) -> list[tuple[str, str]]:
    """``(controllers, path)`` of each line ``id:controllers:path`` of /proc/self/cgroup ("" controllers: v2)."""
    try:
        text = proc_cgroup.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            out.append((parts[1], parts[2]))
    return out


def _ancestors(base: Path, path: str) -> list[Path]:
    """``base/a/b``, ``base/a``, ``base`` for path ``/a/b``: a limit may sit on any of them.

    Inside a container the process's path may not exist under the mount (the container's own
    cgroup is the mount's root): the missing ones are skipped by the readers.
    """
    parts = [part for part in path.split("/") if part and part != ".."]
    return [base.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _v2_limit(cpu_max: Path) -> float | None:
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return _ratio(quota, period)


def _v1_limit(directory: Path) -> float | None:
    try:
        quota = (directory / "cpu.cfs_quota_us").read_text().strip()
        period = (directory / "cpu.cfs_period_us").read_text().strip()
    except OSError:
        return None
    return _ratio(quota, period)


def _ratio(quota: str, period: str) -> float | None:
    """quota / period, or None for "max" (v2) or -1 (v1), the kernel's "no limit"."""
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None  # "max"
    return q / p if q > 0 and p > 0 else None
