"""Per-key rate limits: the ``Limiter`` seam, in-process and Redis implementations, and the factory."""

from __future__ import annotations

from gateway.limits.base import Grant, Limiter, Limits
from gateway.limits.memory import MemoryLimiter
from gateway.limits.redis_limiter import RedisLimiter

__all__ = ["Grant", "Limiter", "Limits", "MemoryLimiter", "RedisLimiter", "make_limiter"]


def make_limiter(redis_url: str | None, fail_open: bool, *, prefix: str = "chungus:",
                 lease_ttl_s: float = 660.0) -> Limiter:
    """Redis-backed when a URL is given, else in-process.

    Args:
        redis_url: ``redis://...``; None for in-process limits.
        fail_open: with Redis down, admit uncounted (True) or answer 503 (False).
        prefix: Redis key prefix (several deployments may share one Redis).
        lease_ttl_s: how long a concurrency slot outlives a replica that died holding it;
            keep it above the longest request.
    """
    if not redis_url:
        return MemoryLimiter()
    return RedisLimiter(redis_url, fail_open=fail_open, prefix=prefix, lease_ttl_s=lease_ttl_s)
