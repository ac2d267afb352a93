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


class ThreadTuner:
    """Picks llama.cpp's thread count at run time from measured decode speed.

    With as many threads as CPUs, one preempted thread stalls every other at each of the graph's
    barriers; on a machine shared with other work a decode step can then take 10x longer than
    with one thread (measured here: 910 ms vs 115 ms per step at load 5-11 on 2 cores). The tuner
    measures windows of ``window`` decode steps (or ``window_s`` seconds, at least 2 steps) and
    every ``explore_every`` windows runs one window with the other option (1 thread or
    ``max_threads``), keeping whichever costs less per token.
    """

    def __init__(self, max_threads: int, window: int = 32, explore_every: int = 4, margin: float = 0.9,
                 window_s: float = 0.5) -> None:
        self.options = sorted({1, max(1, max_threads)})
        self.current = self.options[-1]
        self.active = self.current
        self.window = window
        self.window_s = window_s  # a window also ends after this long (at least 2 steps)
        self.explore_every = explore_every
        self.margin = margin
        self.cost: dict[int, float] = {}
        self.switches = 0
        self._steps = 0
        self._seconds = 0.0
        self._tokens = 0
        self._windows = 0

    def record(self, seconds: float, tokens: int) -> int:
        """One decode step took ``seconds`` for ``tokens`` tokens; returns threads for the next step."""
        if len(self.options) == 1 or tokens <= 0:
            return self.active
        self._steps += 1
        self._seconds += seconds
        self._tokens += tokens
        if self._steps < self.window and (self._steps < 2 or self._seconds < self.window_s):
            return self.active
        per_token = self._seconds / self._tokens
        self._steps, self._seconds, self._tokens = 0, 0.0, 0
        old = self.cost.get(self.active)
        self.cost[self.active] = per_token if old is None or self.active != self.current else 0.5 * old + 0.5 * per_token
        if self.active != self.current:  # an exploration window just ended
            if self.cost[self.active] < self.margin * self.cost.get(self.current, float("inf")):
                self.current = self.active
                self.switches += 1
            self.active = self.current
            return self.active
        self._windows += 1
        if self._windows % self.explore_every == 0:
            self.active = next(t for t in self.options if t != self.current)
        return self.active
