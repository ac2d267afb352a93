"""One minute of the soak (``bench/soak.py``, ``make soak`` runs ten): 64 concurrent streams on the
echo model through ``chungus serve``, zero errors, memory flat."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import run_soak
from tests.e2e.serve import ServeStack, build_echo_stack

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


async def test_one_minute_of_64_streams_has_no_errors_and_flat_memory(tmp_path: Path) -> None:
    stack = ServeStack(build_echo_stack(tmp_path / "stack"), tmp_path / "serve").start()
    try:
        result = await run_soak(stack, minutes=1, concurrency=64, words=32, max_requests=200_000,
                                warmup_s=10, sample_s=10)
    finally:
        stack.kill()
    print("\n" + result.summary())
    assert result.errors == 0, result.error_examples
    assert result.requests >= 64 * 5  # every client got through several streams
    start, middle, end = result.marks()
    assert start.at_s < 2 and end.at_s >= 59 and start.requests < middle.requests < end.requests
    growth = result.growth_mib()
    # some 2,000+ requests a minute here: a leak of 10 KiB each would reach 20 MiB
    assert growth["gateway"] < 20 and growth["triton"] < 20 and growth["stubs"] < 20, growth
    assert all(s.gateway_mib > 0 and s.triton_mib > 0 and s.stubs_mib > 0 for s in result.samples)
