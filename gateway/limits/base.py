"""Per-key rate limits: requests/min and tokens/min as token buckets, plus concurrent requests.

Each bucket holds up to one minute's allowance and refills continuously, so ``Retry-After`` is
the exact time until the refused request would fit. Tokens are reserved before a call
(prompt + max_tokens) and reconciled with the real usage after it. In-process by default
(``gateway.limits.memory``); in Redis (``gateway.limits.redis_limiter``) when several gateway replicas
must share one budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

from gateway.errors import RateLimitError


@dataclass(frozen=True, slots=True)
class Limits:
    """A key's limits; ``None`` means unlimited."""

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
    counted: bool = True  # False when granted without counting (Redis down, fail-open)
    lease: str = ""  # the concurrency lease to give back (Redis)


class Limiter(Protocol):
    """Where the buckets live: this process, or Redis."""

    async def acquire(self, key_id: str, limits: Limits, reserve: int) -> Grant:
        """Admit one request reserving ``reserve`` tokens, or raise ``RateLimitError``."""
        ...

    async def release(self, key_id: str, limits: Limits, grant: Grant, used: int) -> None:
        """Give the concurrency slot back and refund ``grant.reserved - used`` tokens."""
        ...

    async def close(self) -> None: ...


def duration(seconds: float) -> str:
    """OpenAI's reset format: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    if seconds < 59.5:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs}s"


def headers(limits: Limits, req_level: float, tok_level: float) -> dict[str, str]:
    """``x-ratelimit-*`` headers for the limits that are set (reset = until the bucket is full)."""
    out: dict[str, str] = {}
    if limits.rpm:
        out["x-ratelimit-limit-requests"] = str(limits.rpm)
        out["x-ratelimit-remaining-requests"] = str(max(0, math.floor(req_level)))
        out["x-ratelimit-reset-requests"] = duration((limits.rpm - req_level) * 60 / limits.rpm)
    if limits.tpm:
        out["x-ratelimit-limit-tokens"] = str(limits.tpm)
        out["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(tok_level)))
        out["x-ratelimit-reset-tokens"] = duration((limits.tpm - tok_level) * 60 / limits.tpm)
    return out


_MESSAGES = {
    "requests": "Rate limit reached for requests per minute (limit {rpm})",
    "tokens": "Rate limit reached for tokens per minute (limit {tpm}): requested {need}",
    "concurrency": "Too many concurrent requests (limit {max_concurrent})",
    "too_large": "Request needs {need} tokens, more than this key's limit of {tpm} per minute",
}


def refusal(limits: Limits, wait_s: float, reason: str, req_level: float, tok_level: float,
            need: int = 0) -> RateLimitError:
    """The 429: OpenAI body, the limit headers and, when waiting helps, a real Retry-After.

    A request larger than the whole per-minute budget can never succeed: it gets
    ``x-should-retry: false`` (honoured by the OpenAI SDKs) instead of a Retry-After.
    """
    hdrs = headers(limits, req_level, tok_level)
    if reason == "too_large":
        hdrs["x-should-retry"] = "false"
    else:
        hdrs["retry-after"] = str(max(1, math.ceil(wait_s)))
        hdrs["retry-after-ms"] = str(max(1, math.ceil(wait_s * 1000)))
    message = _MESSAGES[reason].format(rpm=limits.rpm, tpm=limits.tpm, need=need,
                                       max_concurrent=limits.max_concurrent)
    if reason != "too_large":
        message += f". Retry after {wait_s:.3f}s."
    return RateLimitError(message, headers=hdrs, code="rate_limit_exceeded")


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


def refill(level: float | None, since: float, cap: int, now: float) -> float:
    """A bucket's level at ``now``: a new bucket is full; it refills ``cap`` per minute."""
    if level is None:
        return float(cap)
    return min(float(cap), level + (now - since) * cap / 60.0)
