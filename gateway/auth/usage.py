"""Usage accounting off the request path: counted in memory, written to the store in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict

from gateway.auth.store import KeyStore

log = logging.getLogger("chungus.usage")


class UsageRecorder:
    """Per key and UTC day: requests, prompt and completion tokens; plus keys' last-used times.

    ``record`` and ``seen`` only touch dictionaries; a background task flushes them every
    ``interval_s``. A failed write keeps its rows for the next flush (up to ``max_rows``), so a
    database blip loses no accounting.
    """

    def __init__(self, store: KeyStore, *, interval_s: float = 2.0, max_rows: int = 100_000) -> None:
        self.store = store
        self.interval_s = interval_s
        self.max_rows = max_rows
        self._usage: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        self._last_used: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def seen(self, key_id: str) -> None:
        """Note that a key was just used."""
        self._last_used[key_id] = time.time()

    def record(self, key_id: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Count one finished request."""
        row = self._usage[(key_id, time.strftime("%Y-%m-%d", time.gmtime()))]
        row[0] += 1
        row[1] += prompt_tokens
        row[2] += completion_tokens

    async def flush(self) -> None:
        """Write what has been counted since the last flush."""
        async with self._lock:
            usage, self._usage = self._usage, defaultdict(lambda: [0, 0, 0])
            last_used, self._last_used = self._last_used, {}
            try:
                await self.store.add_usage([(k, d, v[0], v[1], v[2]) for (k, d), v in usage.items()])
            except Exception:  # noqa: BLE001 - accounting must never break serving
                self._keep(usage)
                log.exception("could not write usage; %d rows kept for the next try", len(usage))
            try:
                await self.store.touch(last_used)
            except Exception:  # noqa: BLE001
                self._last_used = last_used | self._last_used
                log.exception("could not write last-used times")

    def _keep(self, usage: dict[tuple[str, str], list[int]]) -> None:
        for key, (req, prompt, completion) in usage.items():
            if len(self._usage) >= self.max_rows and key not in self._usage:
                log.error("usage backlog full (%d rows); dropping the rest", self.max_rows)
                return
            row = self._usage[key]
            row[0] += req
            row[1] += prompt
            row[2] += completion

    def start(self) -> None:
        """Start flushing in the background."""
        self._task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        """Stop the background task and write what is left."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()
