"""How many CPUs this process may really use: the cgroup's CPU quota and the affinity mask, not
the host's core count (a container on a 64-core host with a 2-CPU quota must run 2 threads)."""

from __future__ import annotations

import math
import os
from pathlib import Path


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), proc_self: Path = Path("/proc/self/cgroup")) -> float | None:
    """The CPU quota (in CPUs) of this process's cgroup, v2 or v1; None when unlimited or unknown."""
    for path in _v2_candidates(root, proc_self):
        try:
            quota, period = path.read_text().split()[:2]
        except (OSError, ValueError):
            continue
        if quota == "max":
            return None
        return int(quota) / int(period)
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def _v2_candidates(root: Path, proc_self: Path) -> list[Path]:
    """cpu.max of this process's own cgroup (and its parents), then the mount root's."""
    found = []
    try:
        for line in proc_self.read_text().splitlines():
            if line.startswith("0::"):
                rel = line[3:].strip().lstrip("/")
                here = root / rel if rel else root
                while True:
                    found.append(here / "cpu.max")
                    if here == root or root not in here.parents:
                        break
                    here = here.parent
    except OSError:
        pass
    found.append(root / "cpu.max")
    return found


def cpu_budget(root: Path = Path("/sys/fs/cgroup"), proc_self: Path = Path("/proc/self/cgroup"),
               affinity: int | None = None) -> int:
    """Whole CPUs this process can use: min(affinity mask, ceil(cgroup quota)), at least 1."""
    if affinity is None:
        try:
            affinity = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = os.cpu_count() or 1
    limit = cgroup_cpu_limit(root, proc_self)
    if limit is not None:
        affinity = min(affinity, max(1, math.ceil(limit - 1e-9)))
    return max(1, affinity)


def threads(configured: str | int | None, budget: int | None = None) -> int:
    """llama.cpp threads: ``auto``/0/empty -> the CPU budget; a number is capped at the budget
    (more threads than CPUs makes ggml's spinning workers fight each other)."""
    budget = cpu_budget() if budget is None else budget
    text = str(configured).strip().lower() if configured is not None else ""
    if text in ("", "auto", "0"):
        return budget
    return max(1, min(int(text), budget))
