"""Stop work for a client that left: a non-streaming request's generation is cancelled (and its
Triton call with it) as soon as the client closes the connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from litestar.types import Receive

from gateway.errors import ClientClosedRequestError

T = TypeVar("T")


async def _disconnected(receive: Receive) -> None:
    # Once the body is read, the server's next message is the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(receive: Receive, work: Awaitable[T]) -> T:
    """Await ``work`` in this task; cancel it if the client disconnects first.

    One watcher task per request (not two, and no ``asyncio.wait``): the hot path stays short.

    Raises:
        ClientClosedRequestError: the client left (nobody will read the response).
    """
    current = asyncio.current_task()
    assert current is not None, "called from a task"
    left = False

    async def watch() -> None:
        nonlocal left
        await _disconnected(receive)
        left = True
        current.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if not left:
            raise
        current.uncancel()
        raise ClientClosedRequestError("the client closed the connection") from None
    finally:
        watcher.cancel()


_cleanups: set[asyncio.Task[None]] = set()


async def unless_cancelled(cleanup: Coroutine[Any, Any, None]) -> None:
    """Run ``cleanup`` to the end even when this task is being cancelled (a client left).

    Litestar cancels a stream's task group when the client disconnects, and its cancellation
    repeats at every await inside the scope, so a cleanup awaited there would be cut at its
    first real wait (a Redis call) and leak the request's concurrency slot. A cancelled task
    hands the cleanup to a task of its own instead.
    """
    task = asyncio.current_task()
    if task is None or not task.cancelling():
        await cleanup
        return
    runner = asyncio.ensure_future(cleanup)
    _cleanups.add(runner)
    runner.add_done_callback(_cleanups.discard)
    await asyncio.shield(runner)
