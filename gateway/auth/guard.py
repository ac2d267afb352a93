"""KeyGuard: bearer keys from the store (cached), model permissions, limits, usage off the hot path."""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.auth.keys import bearer, digest, same_digest, well_formed
from gateway.auth.principal import Principal
from gateway.auth.store import KeyRecord, KeyStore
from gateway.auth.usage import UsageRecorder
from gateway.errors import (
    AuthenticationError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
)
from gateway.limits.base import Grant, Limiter, Limits
from gateway.registry import ModelEntry

log = logging.getLogger("chungus.auth")

T = TypeVar("T")

_INVALID = "Incorrect API key provided. You can find your API key in your CHUNGUS admin."
_MISSING = "You didn't provide an API key. Send it as 'Authorization: Bearer sk-chungus-...'."
_CACHE_MAX = 100_000  # known keys
_MISS_MAX = 10_000  # unknown digests: their own, smaller cache, so fakes never evict real keys
# Failed authentications per client address: a burst of this many, then one per second.
FAILURE_BURST = 20
FAILURE_REFILL_PER_S = 1.0
_CLIENTS_MAX = 10_000


class FailureLimiter:
    """Per-client budget of failed authentications (token bucket), bounded in memory.

    A client that keeps sending unknown keys gets 429s without touching the database.
    """

    def __init__(self, burst: int = FAILURE_BURST, per_s: float = FAILURE_REFILL_PER_S) -> None:
        self.burst = burst
        self.per_s = per_s
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, client: str, now: float) -> float:
        level, since = self._buckets.get(client, (float(self.burst), now))
        return min(float(self.burst), level + (now - since) * self.per_s)

    def check(self, client: str | None) -> None:
        """Raises ``RateLimitError`` when ``client`` has no failures left."""
        if client is None:
            return
        now = time.monotonic()
        level = self._level(client, now)
        if level < 1:
            wait = (1 - level) / self.per_s
            raise RateLimitError("Too many failed authentication attempts from this address. "
                                 f"Retry after {wait:.1f}s.", code="too_many_auth_failures",
                                 headers={"retry-after": str(max(1, math.ceil(wait)))})

    def failed(self, client: str | None) -> None:
        if client is None:
            return
        now = time.monotonic()
        self._buckets[client] = (self._level(client, now) - 1, now)
        self._buckets.move_to_end(client)
        if len(self._buckets) > _CLIENTS_MAX:
            self._buckets.popitem(last=False)


@dataclass(slots=True)
class KeyAdmission:
    """Implements ``Admission``: releases the limiter grant and counts usage, once."""

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
        self.guard.usage.record(self.key_id, prompt_tokens, completion_tokens)
        await self.guard.limiter.release(self.key_id, self.limits, self.grant,
                                         prompt_tokens + completion_tokens)


class KeyGuard:
    """Implements ``Guard`` with the key store, a short TTL cache and a limiter.

    A verified (or unknown) key is cached for ``cache_ttl_s``: no database on the hot path,
    and a revocation reaches every replica within that time. If the database fails when an
    entry is due, the stale entry is used until it answers again; a key never seen before
    then gets 503.
    """

    def __init__(self, store: KeyStore, limiter: Limiter, *, admin_key: str | None,
                 cache_ttl_s: float = 5.0, flush_interval_s: float = 2.0) -> None:
        if admin_key and not well_formed(admin_key):
            raise ValueError("CHUNGUS_ADMIN_KEY must look like sk-chungus-<16 to 128 characters "
                             "of A-Z a-z 0-9 _ ->")
        self.store = store
        self.limiter = limiter
        self.admin_digest = digest(admin_key) if admin_key else None
        self.cache_ttl_s = cache_ttl_s
        self.usage = UsageRecorder(store, interval_s=flush_interval_s)
        self._cache: OrderedDict[str, tuple[float, KeyRecord]] = OrderedDict()
        self._misses: OrderedDict[str, float] = OrderedDict()
        self.failures = FailureLimiter()

    async def start(self) -> None:
        await self.store.migrate()
        self.usage.start()

    async def close(self) -> None:
        await self.usage.close()
        await self.limiter.close()
        await self.store.close()

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        token = bearer(authorization)
        if token is None:
            raise AuthenticationError(_MISSING)
        if not well_formed(token):
            self.failures.check(client)
            self.failures.failed(client)
            raise AuthenticationError(_INVALID)
        key_digest = digest(token)
        if self.admin_digest and same_digest(key_digest, self.admin_digest):
            return Principal(key_id="admin", name="bootstrap admin", admin=True)
        if key_digest not in self._cache:  # a known key costs nothing: never refuse it here
            self.failures.check(client)
        record = await self._lookup(key_digest)
        if record is None or record.revoked:
            self.failures.failed(client)
            raise AuthenticationError(_INVALID)
        if record.expires_at is not None and record.expires_at <= time.time():
            raise AuthenticationError("This API key has expired.")
        self.usage.seen(record.id)
        return Principal(key_id=record.id, name=record.name, admin=record.admin,
                         allowed_models=frozenset(record.allowed_models)
                         if record.allowed_models is not None else None,
                         rpm=record.rpm, tpm=record.tpm, max_concurrent=record.max_concurrent)

    async def _lookup(self, key_digest: str) -> KeyRecord | None:
        now = time.monotonic()
        missed = self._misses.get(key_digest)
        if missed is not None and now - missed < self.cache_ttl_s:
            return None
        hit = self._cache.get(key_digest)
        if hit is not None and now - hit[0] < self.cache_ttl_s:
            return hit[1]
        try:
            record = await self.store.by_digest(key_digest)
        except Exception as exc:
            log.warning("key store unavailable: %s", type(exc).__name__)
            if hit is not None:
                return hit[1]
            raise ServiceUnavailableError("The key store is unavailable; try again shortly",
                                          code="key_store_unavailable") from exc
        if record is None:
            _put(self._misses, key_digest, now, _MISS_MAX)
            self._cache.pop(key_digest, None)
        else:
            _put(self._cache, key_digest, (now, record), _CACHE_MAX)
            self._misses.pop(key_digest, None)
        return record

    def forget(self, key_id: str) -> None:
        """Drop a key from this replica's cache (after an update or revocation here)."""
        for d in [d for d, (_, record) in self._cache.items() if record.id == key_id]:
            del self._cache[d]

    async def admit(self, principal: Principal, entry: ModelEntry,
                    reserve_tokens: int) -> KeyAdmission:
        if principal.allowed_models is not None and entry.id not in principal.allowed_models:
            raise PermissionDeniedError(f"This API key may not use model '{entry.id}'",
                                        param="model")
        key_id = principal.key_id or "anonymous"
        limits = Limits(principal.rpm, principal.tpm, principal.max_concurrent)
        grant = await self.limiter.acquire(key_id, limits, reserve_tokens)
        return KeyAdmission(self, key_id, limits, grant, grant.headers)

    async def flush(self) -> None:
        """Write batched usage and last-used times now (the admin usage route calls this)."""
        await self.usage.flush()


def _put(cache: OrderedDict[str, T], key: str, value: T, limit: int) -> None:
    """Insert as the newest entry; the oldest goes when the cache is full (never all of them)."""
    cache[key] = value
    cache.move_to_end(key)
    if len(cache) > limit:
        cache.popitem(last=False)
