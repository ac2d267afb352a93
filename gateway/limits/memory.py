"""In-process limits: one replica's buckets in a dict; exact, since the event loop runs one acquire at a time."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.limits.base import Grant, Limits, check, headers, refill, refusal


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
        req = refill(s.req, s.req_t, limits.rpm or 0, now)
        tok = refill(s.tok, s.tok_t, limits.tpm or 0, now)
        wait, reason = check(limits, req, tok, s.running, reserve)
        if reason:
            raise refusal(limits, wait, reason, req, tok, reserve)
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
            s.tok = min(float(limits.tpm), refill(s.tok, s.tok_t, limits.tpm, now)
                        + grant.reserved - used)
            s.tok_t = now
        s.running = max(0, s.running - 1)

    async def close(self) -> None:
        return None
