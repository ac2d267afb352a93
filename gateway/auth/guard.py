"""KeyGuard: bearer keys from the store (cached), model permissions, limits, usage off the hot path."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from gateway.auth.keys import bearer, digest, same_digest, well_formed
from gateway.auth.principal import Principal
from gateway.auth.store import KeyRecord, KeyStore
from gateway.auth.usage import UsageRecorder
from gateway.errors import AuthenticationError, PermissionDeniedError, ServiceUnavailableError
from gateway.limits.base import Grant, Limiter, Limits
from gateway.registry import ModelEntry

log = logging.getLogger("chungus.auth")

_INVALID = "Incorrect API key provided. You can find your API key in your CHUNGUS admin."
_MISSING = "You didn't provide an API key. Send it as 'Authorization: Bearer sk-chungus-...'."
_CACHE_MAX = 100_000


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
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def start(self) -> None:
        await self.store.migrate()
        self.usage.start()

    async def close(self) -> None:
        await self.usage.close()
        await self.limiter.close()
        await self.store.close()

    async def authenticate(self, authorization: str | None) -> Principal:
        token = bearer(authorization)
        if token is None:
            raise AuthenticationError(_MISSING)
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
        self.usage.seen(record.id)
        return Principal(key_id=record.id, name=record.name, admin=record.admin,
                         allowed_models=frozenset(record.allowed_models)
                         if record.allowed_models is not None else None,
                         rpm=record.rpm, tpm=record.tpm, max_concurrent=record.max_concurrent)

    async def _lookup(self, key_digest: str) -> KeyRecord | None:
        now = time.monotonic()
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
        if len(self._cache) >= _CACHE_MAX:
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

    async def flush(self) -> None:
        """Write batched usage and last-used times now (the admin usage route calls this)."""
        await self.usage.flush()
