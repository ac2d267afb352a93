"""What decoding may use: a memory budget that decodes reserve from, and the CPUs the container has."""

from __future__ import annotations

import asyncio
import math
import os
from collections import deque
from pathlib import Path

from gateway.errors import InvalidRequestError

CGROUP = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (1.5 for ``150000 100000``), if any.

    cgroup v2 says it in ``cpu.max`` (``"max 100000"``: no limit); v1 in ``cpu.cfs_quota_us``
    (``-1``: no limit) and ``cpu.cfs_period_us``, under ``cpu/`` or ``cpu,cpuacct/``.
    """
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        try:
            quota_us = int((root / folder / "cpu.cfs_quota_us").read_text())
            period_us = int((root / folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    return None


def decode_threads(configured: int = 0, root: Path = CGROUP) -> int:
    """Decode threads: ``configured`` if set, else one less than the CPUs this container may use.

    Those are the cgroup quota rounded up, and no more than the CPUs it may run on (affinity),
    never the host's core count, which in a container can be 64 for a pod limited to 2. One CPU
    is left to the event loop: decodes on every CPU would starve it (health probes time out) and,
    under a quota, get the whole container throttled.
    """
    if configured > 0:
        return configured
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_limit(root)
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, cpus - 1)


class MemoryBudget:
    """Bytes that decodes reserve before they run and give back when their thread is done.

    First come, first served: a decode that does not fit waits until enough is given back (a
    small one does not overtake a big one that waits, so big ones cannot starve). One that could
    never fit is refused at once.
    """

    def __init__(self, total_bytes: int) -> None:
        self.total = total_bytes
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, nbytes: int, param: str) -> None:
        """Reserve ``nbytes``, waiting for them if need be.

        Raises:
            InvalidRequestError: ``image_too_large``: more than the whole budget.
        """
        if nbytes > self.total:
            raise InvalidRequestError(
                f"Decoding this image needs about {nbytes >> 20} MiB; the limit is "
                f"{self.total >> 20} MiB (CHUNGUS_IMAGE_DECODE_MEMORY_MB)", param=param,
                code="image_too_large")
        if not self._waiters and self.used + nbytes <= self.total:
            self.used += nbytes
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((nbytes, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted, then cancelled: give back
                self.release(nbytes)
            else:
                self._wake()  # it may have held up smaller ones behind it
            raise

    def release(self, nbytes: int) -> None:
        """Give back what ``acquire`` reserved (call on the event loop's thread)."""
        self.used -= nbytes
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            nbytes, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if self.used + nbytes > self.total:
                return
            self._waiters.popleft()
            self.used += nbytes
            future.set_result(None)
