"""``n`` generations at once: their deltas interleaved as they arrive, tagged with the choice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from gateway.backends.base import Delta

# Deltas buffered per generation before its producer waits for the consumer.
BUFFER_PER_CHOICE = 4

_Item = tuple[int, Delta | BaseException | None]  # None: that generation ended


async def interleave(streams: Sequence[AsyncGenerator[Delta, None]]) -> AsyncGenerator[tuple[int, Delta], None]:
    """``(choice index, delta)`` from every stream as each arrives.

    The first failure is raised here and stops the others; closing this generator cancels every
    backend call still running.
    """
    if len(streams) == 1:
        only = streams[0]
        try:
            async for delta in only:
                yield 0, delta
        finally:
            await only.aclose()
        return
    queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=BUFFER_PER_CHOICE * len(streams))
    tasks = [asyncio.create_task(_pump(i, s, queue)) for i, s in enumerate(streams)]
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
