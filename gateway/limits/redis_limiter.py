"""Rate limits shared by every gateway replica through one Redis: atomic Lua scripts, Redis's clock.

Per key, a hash holds the two token buckets and a sorted set holds the concurrency leases
(member: a request's lease id, score: when it lapses). A replica that dies holding a slot
therefore leaks it only until the lease lapses, not forever. Keys carry a ``{key_id}`` hash
tag so both live in one Redis Cluster slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from gateway.errors import ServiceUnavailableError
from gateway.limits.base import Grant, Limits, headers, refusal

log = logging.getLogger("chungus.limits")

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rpm, tpm, maxc, need = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local lease, lease_ttl = ARGV[5], tonumber(ARGV[6])
local s = redis.call('HMGET', KEYS[1], 'rl', 'rt', 'tl', 'tt')
local function level(l, ts, cap)
  if cap <= 0 then return 0 end
  if not l then return cap end
  local v = tonumber(l) + (now - tonumber(ts)) * cap / 60
  if v > cap then v = cap end
  return v
end
local rl, tl, c = level(s[1], s[2], rpm), level(s[3], s[4], tpm), 0
if maxc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  c = redis.call('ZCARD', KEYS[2])
end
local wait, reason = 0, ''
if tpm > 0 and need > tpm then wait, reason = 60, 'too_large'
elseif maxc > 0 and c >= maxc then wait, reason = 1, 'concurrency'
elseif rpm > 0 and rl < 1 then wait, reason = (1 - rl) * 60 / rpm, 'requests'
elseif tpm > 0 and tl < need then wait, reason = (need - tl) * 60 / tpm, 'tokens' end
if reason == '' then
  if rpm > 0 then rl = rl - 1 end
  if tpm > 0 then tl = tl - need end
  if rpm > 0 or tpm > 0 then
    redis.call('HSET', KEYS[1], 'rl', tostring(rl), 'rt', tostring(now), 'tl', tostring(tl),
      'tt', tostring(now))
    local ttl = 120
    if tpm > 0 and tl < 0 then ttl = ttl + math.ceil(-tl * 60 / tpm) end
    redis.call('EXPIRE', KEYS[1], ttl)
  end
  if maxc > 0 then
    redis.call('ZADD', KEYS[2], now + lease_ttl, lease)
    redis.call('EXPIRE', KEYS[2], math.ceil(lease_ttl) + 60)
  end
end
return {reason, tostring(wait), tostring(rl), tostring(tl)}
"""

_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local tpm, refund, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if lease ~= '' then redis.call('ZREM', KEYS[2], lease) end
if tpm > 0 and refund ~= 0 then
  local s = redis.call('HMGET', KEYS[1], 'tl', 'tt')
  local tl = tpm
  if s[1] then tl = tonumber(s[1]) + (now - tonumber(s[2])) * tpm / 60 end
  tl = tl + refund
  if tl > tpm then tl = tpm end
  redis.call('HSET', KEYS[1], 'tl', tostring(tl), 'tt', tostring(now))
  local ttl = 120
  if tl < 0 then ttl = ttl + math.ceil(-tl * 60 / tpm) end
  redis.call('EXPIRE', KEYS[1], ttl)
end
return 0
"""


class RedisLimiter:
    """Implements ``Limiter`` in Redis: one script call to acquire, one to release.

    When Redis cannot be reached, requests are admitted uncounted (``fail_open``, the default:
    a limiter outage should not become a serving outage) or refused with 503; either way Redis
    is not tried again for ``retry_s``, so an outage costs no connect timeout per request.
    """

    def __init__(self, url: str, *, fail_open: bool = True, prefix: str = "chungus:",
                 lease_ttl_s: float = 660.0, timeout_s: float = 0.5, retry_s: float = 1.0) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.from_url(url, socket_timeout=timeout_s,
                                       socket_connect_timeout=timeout_s)
        self.fail_open = fail_open
        self.prefix = prefix + "limits:"
        self.lease_ttl_s = lease_ttl_s
        self.retry_s = retry_s
        self._down_until = 0.0
        self._pending: set[asyncio.Task[None]] = set()
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._release = self.redis.register_script(_RELEASE)

    def _keys(self, key_id: str) -> list[str]:
        base = f"{self.prefix}{{{key_id}}}"
        return [base, base + ":leases"]

    async def acquire(self, key_id: str, limits: Limits, reserve: int) -> Grant:
        from redis.exceptions import RedisError

        if limits.none:
            return Grant(reserved=0)
        if time.monotonic() < self._down_until:
            return self._redis_down(None)
        lease = uuid.uuid4().hex if limits.max_concurrent else ""
        args: list[int | float | str] = [limits.rpm or 0, limits.tpm or 0, limits.max_concurrent or 0, reserve, lease,
                self.lease_ttl_s]
        try:
            reason, wait, req, tok = await self._acquire(keys=self._keys(key_id), args=args)
        except (RedisError, OSError) as exc:
            # The script may have run and taken a lease before the reply was lost: give it back
            # by its id once Redis answers, or a max_concurrent=1 key stays locked out.
            if lease:
                self._drop_later(key_id, lease)
            self._down_until = time.monotonic() + self.retry_s
            return self._redis_down(exc)
        reason = reason.decode() if isinstance(reason, bytes) else reason
        req_level, tok_level = float(req), float(tok)
        if reason:
            raise refusal(limits, float(wait), reason, req_level, tok_level, reserve)
        return Grant(reserved=reserve, headers=headers(limits, req_level, tok_level), lease=lease)

    def _redis_down(self, exc: Exception | None) -> Grant:
        if not self.fail_open:
            raise ServiceUnavailableError("Rate limiting is unavailable; try again shortly",
                                          code="rate_limiter_unavailable",
                                          headers={"retry-after": "1"}) from exc
        if exc is not None:
            log.warning("Redis unavailable, admitting without limits for %.1fs (fail-open): %s",
                        self.retry_s, type(exc).__name__)
        return Grant(reserved=0, counted=False)

    async def release(self, key_id: str, limits: Limits, grant: Grant, used: int) -> None:
        from redis.exceptions import RedisError

        if limits.none or not grant.counted:
            return
        refund = grant.reserved - used if limits.tpm else 0
        if not grant.lease and not refund:
            return
        try:
            await self._release(keys=self._keys(key_id), args=[limits.tpm or 0, refund, grant.lease])
        except (RedisError, OSError) as exc:
            # The refund is lost (the key is charged its reservation); the lease is returned by
            # its id as soon as Redis answers again.
            log.warning("Redis unavailable on release: %s", type(exc).__name__)
            if grant.lease:
                self._drop_later(key_id, grant.lease)

    def _drop_later(self, key_id: str, lease: str) -> None:
        task = asyncio.create_task(self._drop_lease(key_id, lease))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _drop_lease(self, key_id: str, lease: str, attempts: int = 30) -> None:
        """Remove one lease by id, retrying while Redis is unreachable (bounded)."""
        from redis.exceptions import RedisError

        for _ in range(attempts):
            try:
                await self.redis.zrem(self._keys(key_id)[1], lease)
                return
            except (RedisError, OSError):
                await asyncio.sleep(self.retry_s)
        log.warning("could not return a concurrency lease; it lapses in %.0fs", self.lease_ttl_s)

    async def close(self) -> None:
        for task in list(self._pending):
            task.cancel()
        await self.redis.aclose()
