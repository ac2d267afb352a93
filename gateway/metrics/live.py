"""Live figures for the web console: the last 60 s of this process, in per-second buckets.

``LiveWindow`` is fed from the same places as the Prometheus metrics; ``LiveWindow.stats``
sums the ring and takes percentiles of the latency samples it kept. Each second keeps at most
``_SAMPLES`` latencies of each kind, so memory and the cost of a read stay bounded under load.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec

WINDOW_S = 60
_SAMPLES = 512  # latency samples kept per second and kind (the first ones of that second)


class EndpointHealth(msgspec.Struct, frozen=True, kw_only=True):
    """One model server endpoint as this process sees it."""

    url: str
    healthy: bool
    outstanding: int


class LiveStats(msgspec.Struct, frozen=True, kw_only=True):
    """Rates over the last 60 s, latency percentiles in milliseconds (None: no sample yet)."""

    requests_per_s: float
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    itl_p50_ms: float | None
    itl_p95_ms: float | None
    streams_in_flight: int
    requests_in_flight: int
    errors_per_s: float
    endpoints: list[EndpointHealth]


class _Second:
    __slots__ = ("errors", "itl", "requests", "second", "ttft")

    def __init__(self, second: int) -> None:
        self.second = second
        self.requests = 0
        self.errors = 0
        self.ttft: list[float] = []
        self.itl: list[float] = []


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The ``q`` (0-1) quantile of ascending ``sorted_values`` by the nearest-rank rule."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


class LiveWindow:
    """A ring of per-second counters and latency samples over the last ``WINDOW_S`` seconds.

    Args:
        clock: seconds, monotonic (tests pass their own).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.ring = [_Second(-1) for _ in range(WINDOW_S)]
        self.requests_in_flight = 0
        self.streams_in_flight = 0

    def _slot(self) -> _Second:
        second = int(self.clock())
        slot = self.ring[second % WINDOW_S]
        if slot.second != second:
            slot.__init__(second)  # type: ignore[misc]  # reuse the slot: no allocation per second
        return slot

    def request_done(self, error: bool) -> None:
        slot = self._slot()
        slot.requests += 1
        if error:
            slot.errors += 1

    def ttft(self, seconds: float) -> None:
        slot = self._slot()
        if len(slot.ttft) < _SAMPLES:
            slot.ttft.append(seconds)

    def itl(self, seconds: float) -> None:
        slot = self._slot()
        if len(slot.itl) < _SAMPLES:
            slot.itl.append(seconds)

    def stats(self, endpoints: list[EndpointHealth]) -> LiveStats:
        now = int(self.clock())
        recent = [s for s in self.ring if now - WINDOW_S < s.second <= now]
        ttft = sorted(v for s in recent for v in s.ttft)
        itl = sorted(v for s in recent for v in s.itl)
        return LiveStats(
            requests_per_s=sum(s.requests for s in recent) / WINDOW_S,
            ttft_p50_ms=_ms(percentile(ttft, 0.5)), ttft_p95_ms=_ms(percentile(ttft, 0.95)),
            itl_p50_ms=_ms(percentile(itl, 0.5)), itl_p95_ms=_ms(percentile(itl, 0.95)),
            streams_in_flight=self.streams_in_flight,
            requests_in_flight=self.requests_in_flight,
            errors_per_s=sum(s.errors for s in recent) / WINDOW_S,
            endpoints=endpoints)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0
