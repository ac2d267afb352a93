"""Stop work for a client that left: a non-streaming request's generation is cancelled (and its
Triton call with it) as soon as the client closes the connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

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
