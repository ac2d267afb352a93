"""Billing and slot release survive the way Litestar cancels a stream when its client leaves:
an anyio cancel scope, which cancels again at every await inside it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio

from gateway.http.disconnect import unless_cancelled as _unless_cancelled


async def _cancel_while_waiting(finish: Callable[[Awaitable[None]], Awaitable[None]]) -> list[str]:
    done: list[str] = []

    async def cleanup() -> None:
        await asyncio.sleep(0.05)  # a real wait, like a Redis call
        done.append("released")

    async def stream() -> None:
        try:
            await asyncio.sleep(10)  # waiting on Triton
        finally:
            await finish(cleanup())

    async with anyio.create_task_group() as group:
        group.start_soon(stream)
        await asyncio.sleep(0.01)
        group.cancel_scope.cancel()
    await asyncio.sleep(0.2)
    return done


async def test_cleanup_runs_to_the_end_inside_a_cancelled_scope() -> None:
    assert await _cancel_while_waiting(_unless_cancelled) == ["released"]


async def test_a_plain_await_would_lose_it() -> None:
    async def plain(cleanup: Awaitable[None]) -> None:
        await cleanup

    assert await _cancel_while_waiting(plain) == []  # the bug this guards against


async def test_without_cancellation_the_cleanup_runs_inline() -> None:
    ran: list[asyncio.Task[object] | None] = []

    async def cleanup() -> None:
        ran.append(asyncio.current_task())

    await _unless_cancelled(cleanup())
    assert ran == [asyncio.current_task()]
