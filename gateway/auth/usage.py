"""Usage accounting off the request path: counted in memory, written to the store in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

from gateway.auth.principal import Admission, Guard, Principal
from gateway.auth.store import HOUR, MINUTE, USAGE_COUNTS, KeyStore
from gateway.errors import RateLimitError
from gateway.registry import ModelEntry

log = logging.getLogger("chungus.usage")

MINUTE_RETENTION_S = 2 * 86400  # minute buckets feed the last hour's plot; hours feed the rest
PURGE_EVERY_S = 3600.0
BucketKey = tuple[int, int, str, str]  # width, start, key id, model


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
        self._buckets: defaultdict[BucketKey, list[int]] = defaultdict(_zeros)
        self.retention_days = 90.0  # hour buckets older than this are deleted
        self._purged_at = 0.0
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

    def bucket(self, key_id: str, model: str, counts: tuple[int, int, int, int, int]) -> None:
        """Add ``counts`` (in ``USAGE_COUNTS`` order) to this minute's and this hour's buckets."""
        now = int(time.time())
        for width in (MINUTE, HOUR):
            row = self._buckets[(width, now - now % width, key_id, model)]
            for i, n in enumerate(counts):
                row[i] += n

    async def _flush_buckets(self) -> None:
        buckets, self._buckets = self._buckets, defaultdict(_zeros)
        try:
            await self.store.add_buckets([(*k, tuple(v)) for k, v in buckets.items()])
        except Exception:  # noqa: BLE001 - accounting must never break serving
            for key, counts in buckets.items():
                if len(self._buckets) < self.max_rows or key in self._buckets:
                    row = self._buckets[key]
                    for i, n in enumerate(counts):
                        row[i] += n
            log.exception("could not write usage buckets; kept for the next try")
        if time.monotonic() - self._purged_at >= PURGE_EVERY_S:
            self._purged_at = time.monotonic()
            await self.purge()

    async def purge(self) -> None:
        """Delete buckets past their retention."""
        now = int(time.time())
        try:
            await self.store.purge_buckets(MINUTE, now - MINUTE_RETENTION_S)
            await self.store.purge_buckets(HOUR, now - int(self.retention_days * 86400))
        except Exception:  # noqa: BLE001
            log.exception("could not purge old usage buckets")

    async def flush(self) -> None:
        """Write what has been counted since the last flush."""
        async with self._lock:
            await self._flush_buckets()
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


def _zeros() -> list[int]:
    return [0] * len(USAGE_COUNTS)


@dataclass(slots=True)
class CountedAdmission:
    """An ``Admission`` that also counts the request in its key's and model's usage buckets.

    ``finish`` called while an exception is being handled, or with no tokens at all, counts
    the request as an error (the services call ``finish(0, 0)`` when a request fails).
    """

    inner: Admission
    recorder: UsageRecorder
    key_id: str
    model: str
    headers: dict[str, str]
    done: bool = False

    async def finish(self, prompt_tokens: int, completion_tokens: int) -> None:
        if not self.done:
            self.done = True
            error = sys.exc_info()[1] is not None or prompt_tokens + completion_tokens == 0
            self.recorder.bucket(self.key_id, self.model,
                                 (1, prompt_tokens, completion_tokens, int(error), 0))
        await self.inner.finish(prompt_tokens, completion_tokens)


class CountingGuard:
    """A ``Guard`` over another that counts usage per key, model and minute in ``recorder``:
    requests, tokens, errors and rate-limit refusals. Only dictionary updates on the request
    path; the recorder writes them in the background."""

    def __init__(self, inner: Guard, recorder: UsageRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        return await self.inner.authenticate(authorization, client)

    async def admit(self, principal: Principal, entry: ModelEntry, reserve_tokens: int) -> Admission:
        key_id = principal.key_id or "anonymous"
        try:
            admission = await self.inner.admit(principal, entry, reserve_tokens)
        except RateLimitError:
            self.recorder.bucket(key_id, entry.id, (0, 0, 0, 0, 1))
            raise
        return CountedAdmission(admission, self.recorder, key_id, entry.id, admission.headers)
