"""The console's live window: rates over 60 s, nearest-rank percentiles, old seconds dropped."""

from __future__ import annotations

from gateway.metrics.live import WINDOW_S, EndpointHealth, LiveWindow, percentile


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.5) == 7.0
    assert percentile([], 0.5) is None


def test_rates_are_per_second_over_the_window() -> None:
    clock = Clock()
    window = LiveWindow(clock)
    for _ in range(90):
        window.request_done(error=False)
    for _ in range(6):
        window.request_done(error=True)
    stats = window.stats([])
    assert stats.requests_per_s == 96 / WINDOW_S
    assert stats.errors_per_s == 6 / WINDOW_S
    assert (stats.ttft_p50_ms, stats.itl_p95_ms) == (None, None)


def test_latencies_in_milliseconds_across_seconds() -> None:
    clock = Clock()
    window = LiveWindow(clock)
    for i in range(1, 11):  # 10..100 ms TTFT, one a second
        window.ttft(i / 100)
        window.itl(i / 1000)
        clock.now += 1
    stats = window.stats([])
    assert stats.ttft_p50_ms == 50.0
    assert stats.ttft_p95_ms == 100.0
    assert stats.itl_p50_ms == 5.0
    assert stats.itl_p95_ms == 10.0


def test_seconds_older_than_the_window_are_dropped() -> None:
    clock = Clock()
    window = LiveWindow(clock)
    window.request_done(error=True)
    window.ttft(0.5)
    clock.now += WINDOW_S - 1  # still inside
    assert window.stats([]).requests_per_s == 1 / WINDOW_S
    clock.now += 1  # the slot is now 60 s old
    stats = window.stats([])
    assert (stats.requests_per_s, stats.errors_per_s, stats.ttft_p50_ms) == (0.0, 0.0, None)
    window.request_done(error=False)  # reuses the ring slot of the old second
    assert window.stats([]).requests_per_s == 1 / WINDOW_S
    assert window.stats([]).errors_per_s == 0.0


def test_in_flight_and_endpoints_pass_through() -> None:
    window = LiveWindow(Clock())
    window.requests_in_flight, window.streams_in_flight = 3, 2
    eps = [EndpointHealth(url="a:8001", healthy=True, outstanding=4)]
    stats = window.stats(eps)
    assert (stats.requests_in_flight, stats.streams_in_flight, stats.endpoints) == (3, 2, eps)
