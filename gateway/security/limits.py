"""Per-key rate limits: requests/min and tokens/min as token buckets, plus concurrent requests.

Tokens are reserved before a call (prompt + max_tokens) and reconciled with the real usage
after it. In-process by default; in Redis (one atomic script per acquire and per release,
Redis's own clock) when several gateway replicas must share one budget.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.errors import RateLimitError, ServiceUnavailableError

log = logging.getLogger("chungus.limits")


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None

    @property
    def none(self) -> bool:
        return not (self.rpm or self.tpm or self.max_concurrent)


@dataclass(slots=True)
class Grant:
    """An admitted request: what it reserved, and the headers to send."""

    reserved: int
    headers: dict[str, str] = field(default_factory=dict)
    counted: bool = True  # False when granted without counting (fail-open)


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``20ms``, ``1s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:.0f}s" if minutes else f"{secs:.3g}s"


def headers(limits: Limits, req_level: float, tok_level: float) -> dict[str, str]:
    """``x-ratelimit-*`` headers for the limits that are set."""
    out: dict[str, str] = {}
    if limits.rpm:
        out["x-ratelimit-limit-requests"] = str(limits.rpm)
        out["x-ratelimit-remaining-requests"] = str(max(0, math.floor(req_level)))
        out["x-ratelimit-reset-requests"] = _duration((limits.rpm - req_level) * 60 / limits.rpm)
    if limits.tpm:
        out["x-ratelimit-limit-tokens"] = str(limits.tpm)
        out["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(tok_level)))
        out["x-ratelimit-reset-tokens"] = _duration((limits.tpm - tok_level) * 60 / limits.tpm)
    return out


def refusal(limits: Limits, wait_s: float, reason: str, req_level: float,
            tok_level: float) -> RateLimitError:
    """The 429: OpenAI body, a real Retry-After, and the limit headers."""
    hdrs = headers(limits, req_level, tok_level)
    hdrs["retry-after"] = str(max(1, math.ceil(wait_s)))
    hdrs["retry-after-ms"] = str(max(1, math.ceil(wait_s * 1000)))
    messages = {
        "requests": f"Rate limit reached for requests per minute (limit {limits.rpm})",
        "tokens": f"Rate limit reached for tokens per minute (limit {limits.tpm})",
        "concurrency": f"Too many concurrent requests (limit {limits.max_concurrent})",
        "too_large": f"Request needs more tokens than this key's limit of {limits.tpm} per minute",
    }
    return RateLimitError(f"{messages[reason]}. Retry after {wait_s:.2f}s.", headers=hdrs,
                          code="rate_limit_exceeded")


class Limiter(Protocol):
    async def acquire(self, key_id: str, limits: Limits, reserve: int) -> Grant: ...

    async def release(self, key_id: str, limits: Limits, grant: Grant, used: int) -> None: ...

    async def close(self) -> None: ...


def _level(level: float | None, since: float, cap: int, now: float) -> float:
    if level is None:
        return float(cap)
    return min(float(cap), level + (now - since) * cap / 60.0)


@dataclass(slots=True)
class _State:
    req: float | None = None
    req_t: float = 0.0
    tok: float | None = None
    tok_t: float = 0.0
    running: int = 0


class MemoryLimiter:
    """One process's limits; exact, since the event loop runs one acquire at a time."""

    def __init__(self) -> None:
        self.state: dict[str, _State] = {}

    async def acquire(self, key_id: str, limits: Limits, reserve: int) -> Grant:
        if limits.none:
            return Grant(reserved=0)
        now = time.monotonic()
        s = self.state.setdefault(key_id, _State())
        req = _level(s.req, s.req_t, limits.rpm or 0, now)
        tok = _level(s.tok, s.tok_t, limits.tpm or 0, now)
        wait, reason = check(limits, req, tok, s.running, reserve)
        if reason:
            raise refusal(limits, wait, reason, req, tok)
        s.req, s.req_t = req - (1 if limits.rpm else 0), now
        s.tok, s.tok_t = tok - (reserve if limits.tpm else 0), now
        s.running += 1
        return Grant(reserved=reserve, headers=headers(limits, s.req, s.tok))

    async def release(self, key_id: str, limits: Limits, grant: Grant, used: int) -> None:
        s = self.state.get(key_id)
        if s is None or limits.none:
            return
        now = time.monotonic()
        if limits.tpm:
            s.tok = min(float(limits.tpm), _level(s.tok, s.tok_t, limits.tpm, now)
                        + grant.reserved - used)
            s.tok_t = now
        s.running = max(0, s.running - 1)

    async def close(self) -> None:
        return None


def check(limits: Limits, req: float, tok: float, running: int, reserve: int) -> tuple[float, str]:
    """(seconds to wait, reason) for a request that must wait; (0, "") when it may go."""
    if limits.tpm and reserve > limits.tpm:
        return 60.0, "too_large"
    if limits.max_concurrent and running >= limits.max_concurrent:
        return 1.0, "concurrency"
    if limits.rpm and req < 1:
        return (1 - req) * 60 / limits.rpm, "requests"
    if limits.tpm and tok < reserve:
        return (reserve - tok) * 60 / limits.tpm, "tokens"
    return 0.0, ""


_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rpm, tpm, maxc, need, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5])
local s = redis.call('HMGET', KEYS[1], 'rl', 'rt', 'tl', 'tt', 'c')
local function level(l, ts, cap)
  if cap <= 0 then return 0 end
  if not l then return cap end
  local v = tonumber(l) + (now - tonumber(ts)) * cap / 60
  if v > cap then v = cap end
  return v
end
local rl, tl, c = level(s[1], s[2], rpm), level(s[3], s[4], tpm), tonumber(s[5] or '0')
local wait, reason = 0, ''
if tpm > 0 and need > tpm then wait, reason = 60, 'too_large'
elseif maxc > 0 and c >= maxc then wait, reason = 1, 'concurrency'
elseif rpm > 0 and rl < 1 then wait, reason = (1 - rl) * 60 / rpm, 'requests'
elseif tpm > 0 and tl < need then wait, reason = (need - tl) * 60 / tpm, 'tokens' end
if reason == '' then
  if rpm > 0 then rl = rl - 1 end
  if tpm > 0 then tl = tl - need end
  c = c + 1
  redis.call('HSET', KEYS[1], 'rl', tostring(rl), 'rt', tostring(now), 'tl', tostring(tl),
    'tt', tostring(now), 'c', c)
  redis.call('EXPIRE', KEYS[1], ttl)
end
return {reason, tostring(wait), tostring(rl), tostring(tl)}
"""

_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local tpm, refund = tonumber(ARGV[1]), tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'tl', 'tt', 'c')
if not s[3] then return 0 end
if tpm > 0 and s[1] then
  local tl = tonumber(s[1]) + (now - tonumber(s[2])) * tpm / 60 + refund
  if tl > tpm then tl = tpm end
  redis.call('HSET', KEYS[1], 'tl', tostring(tl), 'tt', tostring(now))
end
local c = tonumber(s[3]) - 1
if c < 0 then c = 0 end
redis.call('HSET', KEYS[1], 'c', c)
return c
"""


class RedisLimiter:
    """Limits shared by every replica through one Redis; atomic Lua scripts, Redis's clock."""

    def __init__(self, url: str, *, fail_open: bool = True, prefix: str = "chungus:limits:",
                 ttl_s: int = 600) -> None:
        import redis.asyncio as aioredis  # noqa: PLC0415

        self.redis = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.fail_open = fail_open
        self.prefix = prefix
        self.ttl_s = ttl_s
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._release = self.redis.register_script(_RELEASE)

    async def acquire(self, key_id: str, limits: Limits, reserve: int) -> Grant:
        from redis.exceptions import RedisError  # noqa: PLC0415

        if limits.none:
            return Grant(reserved=0)
        args = [limits.rpm or 0, limits.tpm or 0, limits.max_concurrent or 0, reserve, self.ttl_s]
        try:
            reason, wait, req, tok = await self._acquire(keys=[self.prefix + key_id], args=args)
        except (RedisError, OSError) as exc:
            return self._redis_down(exc)
        reason = reason.decode() if isinstance(reason, bytes) else reason
        req_level, tok_level = float(req), float(tok)
        if reason:
            raise refusal(limits, float(wait), reason, req_level, tok_level)
        return Grant(reserved=reserve, headers=headers(limits, req_level, tok_level))

    def _redis_down(self, exc: Exception) -> Grant:
        if not self.fail_open:
            raise ServiceUnavailableError("rate limiting is unavailable; try again shortly",
                                          code="rate_limiter_unavailable") from exc
        log.warning("Redis unavailable, admitting without limits (fail-open): %s", type(exc).__name__)
        return Grant(reserved=0, counted=False)

    async def release(self, key_id: str, limits: Limits, grant: Grant, used: int) -> None:
        from redis.exceptions import RedisError  # noqa: PLC0415

        if limits.none or not grant.counted:
            return
        try:
            await self._release(keys=[self.prefix + key_id],
                                args=[limits.tpm or 0, grant.reserved - used])
        except (RedisError, OSError) as exc:
            log.warning("Redis unavailable on release: %s", type(exc).__name__)

    async def close(self) -> None:
        await self.redis.aclose()


def make_limiter(redis_url: str | None, fail_open: bool) -> Any:
    """Redis-backed when a URL is given, else in-process."""
    return RedisLimiter(redis_url, fail_open=fail_open) if redis_url else MemoryLimiter()
