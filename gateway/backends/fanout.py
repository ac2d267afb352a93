"""Several generations at once (``n`` choices; completions' list of prompts): their deltas interleaved as
they arrive, each tagged with its choice index."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from gateway.backends.base import Delta

# Deltas buffered per generation before its producer waits for the consumer (a slow client slows
# the generations down instead of growing memory).
BUFFER_PER_STREAM = 4

_Item = tuple[int, Delta | BaseException | None]  # None: that generation ended


async def interleave(streams: Sequence[AsyncGenerator[Delta, None]]) -> AsyncGenerator[tuple[int, Delta], None]:
    """``(index, delta)`` from every stream as soon as each arrives.

    The first failure of any stream is raised here and stops the others. Closing this generator
    (or cancelling its consumer) cancels every stream still running, so each backend call is
    cancelled too.
    """
    if len(streams) == 1:  # the common case needs no tasks
        only = streams[0]
        try:
            async for delta in only:
                yield 0, delta
        finally:
            await only.aclose()
        return
    queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=BUFFER_PER_STREAM * len(streams))
    tasks = [asyncio.create_task(_pump(i, stream, queue)) for i, stream in enumerate(streams)]
    try:
        running = len(tasks)
        while running:
            index, item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()
        # Wait for the backend calls to be cancelled; if this task is itself being cancelled the
        # wait is cut short, and the cancelled tasks finish on their own.
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pump(index: int, stream: AsyncGenerator[Delta, None], queue: asyncio.Queue[_Item]) -> None:
    try:
        async for delta in stream:
            await queue.put((index, delta))
    except Exception as exc:  # handed to the consumer, which raises it
        await queue.put((index, exc))
        return
    finally:
        await stream.aclose()
    await queue.put((index, None))
