"""Decode threads follow the cgroup CPU quota (v1 and v2), not the host's cores; the memory budget
grants first come first served, refuses what could never fit, and survives cancellation."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gateway.errors import InvalidRequestError
from gateway.images.budget import MemoryBudget, cgroup_cpu_limit, decode_threads


def _v2(root: Path, cpu_max: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(cpu_max + "\n")
    return root


def _v1(root: Path, quota: int, period: int = 100000, folder: str = "cpu,cpuacct") -> Path:
    (root / folder).mkdir(parents=True)
    (root / folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / folder / "cpu.cfs_period_us").write_text(f"{period}\n")
    return root


def test_cgroup_v2(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_v2(tmp_path / "a", "150000 100000")) == 1.5
    assert cgroup_cpu_limit(_v2(tmp_path / "b", "200000 50000")) == 4.0
    assert cgroup_cpu_limit(_v2(tmp_path / "c", "max 100000")) is None
    assert cgroup_cpu_limit(_v2(tmp_path / "d", "garbage")) is None


def test_cgroup_v1(tmp_path: Path) -> None:
    assert cgroup_cpu_limit(_v1(tmp_path / "a", 250000)) == 2.5
    assert cgroup_cpu_limit(_v1(tmp_path / "b", 50000, folder="cpu")) == 0.5
    assert cgroup_cpu_limit(_v1(tmp_path / "c", -1)) is None
    assert cgroup_cpu_limit(tmp_path / "nothing") is None


def test_threads_follow_the_quota_not_the_host(tmp_path: Path) -> None:
    """One less than the container's CPUs (one is the event loop's), at least one."""
    cpus = len(os.sched_getaffinity(0))
    assert decode_threads(root=_v2(tmp_path / "a", "250000 100000")) == max(1, min(cpus, 3) - 1)
    assert decode_threads(root=_v2(tmp_path / "b", "10000 100000")) == 1  # a tenth: still one
    assert decode_threads(root=_v2(tmp_path / "c", "150000 100000")) == 1  # 1.5: 2 CPUs, 1 free
    assert decode_threads(root=_v2(tmp_path / "d", "6400000 100000")) == max(1, cpus - 1)
    assert decode_threads(root=_v2(tmp_path / "e", "max 100000")) == max(1, cpus - 1)
    assert decode_threads(7, root=_v2(tmp_path / "f", "100000 100000")) == 7  # configured wins


async def test_budget_waits_in_order_and_refuses_what_cannot_fit() -> None:
    budget = MemoryBudget(100 << 20)
    await budget.acquire(60 << 20, "p")
    big = asyncio.create_task(budget.acquire(70 << 20, "p"))
    small = asyncio.create_task(budget.acquire(10 << 20, "p"))  # fits, must not overtake `big`
    await asyncio.sleep(0.01)
    assert not big.done() and not small.done() and budget.used == 60 << 20
    budget.release(60 << 20)
    await asyncio.gather(big, small)
    assert budget.used == 80 << 20
    with pytest.raises(InvalidRequestError) as info:
        await budget.acquire(101 << 20, "messages[0].content[0].image_url.url")
    assert info.value.code == "image_too_large"
    assert "101 MiB" in info.value.message and "limit is 100 MiB" in info.value.message
    assert info.value.param == "messages[0].content[0].image_url.url"
    assert budget.used == 80 << 20


async def test_a_cancelled_waiter_lets_the_next_one_in() -> None:
    budget = MemoryBudget(100)
    await budget.acquire(50, "p")
    big = asyncio.create_task(budget.acquire(90, "p"))
    small = asyncio.create_task(budget.acquire(40, "p"))
    await asyncio.sleep(0)
    big.cancel()
    await asyncio.wait_for(small, 1)
    assert small.done() and budget.used == 90
    with pytest.raises(asyncio.CancelledError):
        await big
    budget.release(90)
    assert budget.used == 0 and not budget._waiters
