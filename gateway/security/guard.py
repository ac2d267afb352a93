"""KeyGuard: bearer keys from the store (cached), model permissions, limits, usage off the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field

from gateway.errors import AuthenticationError, PermissionDeniedError
from gateway.registry import ModelEntry
from gateway.security.base import Principal
from gateway.security.keys import bearer, digest, same_digest, well_formed
from gateway.security.limits import Grant, Limiter, Limits
from gateway.security.store import KeyRecord, KeyStore

log = logging.getLogger("chungus.auth")

_INVALID = "Incorrect API key provided. You can find your API key in your CHUNGUS admin."


@dataclass(slots=True)
class KeyAdmission:
    guard: KeyGuard
    key_id: str
    limits: Limits
    grant: Grant
    headers: dict[str, str] = field(default_factory=dict)
    done: bool = False

    async def finish(self, prompt_tokens: int, completion_tokens: int) -> None:
        if self.done:
            return
        self.done = True
        await self.guard.limiter.release(self.key_id, self.limits, self.grant,
                                         prompt_tokens + completion_tokens)
        self.guard.record_usage(self.key_id, prompt_tokens, completion_tokens)


class KeyGuard:
    """Implements ``Guard`` with the key store, a short TTL cache and a limiter."""

    def __init__(self, store: KeyStore, limiter: Limiter, *, admin_key: str | None,
                 cache_ttl_s: float = 5.0, flush_interval_s: float = 2.0) -> None:
        self.store = store
        self.limiter = limiter
        self.admin_digest = digest(admin_key) if admin_key else None
        self.cache_ttl_s = cache_ttl_s
        self.flush_interval_s = flush_interval_s
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._last_used: dict[str, float] = {}
        self._usage: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.store.migrate()
        self._flusher = asyncio.create_task(self._flush_loop())

    async def close(self) -> None:
        if self._flusher:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()
        await self.limiter.close()
        await self.store.close()

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer(authorization)
        if token is None:
            raise AuthenticationError("You didn't provide an API key. Send it as "
                                      "'Authorization: Bearer sk-chungus-...'.")
        if not well_formed(token):
            raise AuthenticationError(_INVALID)
        key_digest = digest(token)
        if self.admin_digest and same_digest(key_digest, self.admin_digest):
            return Principal(key_id="admin", name="bootstrap admin", admin=True)
        record = await self._lookup(key_digest)
        if record is None or record.revoked:
            raise AuthenticationError(_INVALID)
        if record.expires_at is not None and record.expires_at <= time.time():
            raise AuthenticationError("This API key has expired.")
        self._last_used[record.id] = time.time()
        return Principal(key_id=record.id, name=record.name, admin=record.admin,
                         allowed_models=frozenset(record.allowed_models)
                         if record.allowed_models is not None else None,
                         rpm=record.rpm, tpm=record.tpm, max_concurrent=record.max_concurrent)

    async def _lookup(self, key_digest: str) -> KeyRecord | None:
        now = time.monotonic()
        hit = self._cache.get(key_digest)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1]
        record = await self.store.by_digest(key_digest)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key_digest] = (now, record)
        return record

    def forget(self, key_id: str) -> None:
        """Drop a key from this replica's cache (after an update or revocation here)."""
        self._cache = {d: v for d, v in self._cache.items() if v[1] is None or v[1].id != key_id}

    async def admit(self, principal: Principal, entry: ModelEntry,
                    reserve_tokens: int) -> KeyAdmission:
        if principal.allowed_models is not None and entry.id not in principal.allowed_models:
            raise PermissionDeniedError(f"This API key may not use model '{entry.id}'",
                                        param="model")
        key_id = principal.key_id or "anonymous"
        limits = Limits(principal.rpm, principal.tpm, principal.max_concurrent)
        grant = await self.limiter.acquire(key_id, limits, reserve_tokens)
        return KeyAdmission(self, key_id, limits, grant, grant.headers)

    def record_usage(self, key_id: str, prompt_tokens: int, completion_tokens: int) -> None:
        day = time.strftime("%Y-%m-%d", time.gmtime())
        row = self._usage[(key_id, day)]
        row[0] += 1
        row[1] += prompt_tokens
        row[2] += completion_tokens

    async def flush(self) -> None:
        """Write batched usage and last-used times (called in the background)."""
        usage, self._usage = self._usage, defaultdict(lambda: [0, 0, 0])
        last_used, self._last_used = self._last_used, {}
        try:
            await self.store.add_usage([(k, d, *v) for (k, d), v in usage.items()])
            await self.store.touch(last_used)
        except Exception:  # noqa: BLE001 - accounting must never break serving
            log.exception("could not write usage; %d rows dropped", len(usage))

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            await self.flush()
