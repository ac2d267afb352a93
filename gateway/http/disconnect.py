"""Stop work for a client that left: a non-streaming request's generation is cancelled (and its
Triton call with it) as soon as the client closes the connection."""

from __future__ import annotations

import asyncio
import contextlib
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
    """Await ``work``; cancel it if the client disconnects first.

    Raises:
        ClientClosedRequestError: the client left (nobody will read the response).
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    raise ClientClosedRequestError("the client closed the connection")
