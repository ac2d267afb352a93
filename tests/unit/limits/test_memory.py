"""The in-process limiter on a fake clock: admission, refusals, refill and reconciliation."""

from __future__ import annotations

import pytest

from gateway.errors import RateLimitError
from gateway.limits import memory
from gateway.limits.base import Grant, Limits
from gateway.limits.memory import MemoryLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(memory.time, "monotonic", fake)
    return fake


async def test_no_limits_admit_without_state(clock: Clock) -> None:
    limiter = MemoryLimiter()
    grant = await limiter.acquire("k", Limits(), 500)
    assert (grant.reserved, grant.headers, grant.counted) == (0, {}, True)
    assert limiter.state == {}
    await limiter.release("k", Limits(), grant, 0)
    assert limiter.state == {}


async def test_acquire_takes_one_request_and_reserves_tokens(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(rpm=2, tpm=100)
    grant = await limiter.acquire("k", limits, 30)
    assert grant.reserved == 30
    assert grant.headers == {
        "x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "30s",
        "x-ratelimit-limit-tokens": "100", "x-ratelimit-remaining-tokens": "70",
        "x-ratelimit-reset-tokens": "18s",
    }
    s = limiter.state["k"]
    assert (s.req, s.req_t, s.tok, s.tok_t, s.running) == (1.0, 1000.0, 70.0, 1000.0, 1)


async def test_requests_bucket_refuses_then_refills(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(rpm=2)
    await limiter.acquire("k", limits, 0)
    await limiter.acquire("k", limits, 0)
    with pytest.raises(RateLimitError) as refused:
        await limiter.acquire("k", limits, 0)
    assert refused.value.message == ("Rate limit reached for requests per minute (limit 2). "
                                     "Retry after 30.000s.")
    assert refused.value.headers == {
        "x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s", "retry-after": "30", "retry-after-ms": "30000"}
    assert limiter.state["k"].running == 2  # a refusal takes nothing
    clock.now += 15.0  # half a request back
    with pytest.raises(RateLimitError) as still:
        await limiter.acquire("k", limits, 0)
    assert still.value.headers["retry-after-ms"] == "15000"
    clock.now += 15.0
    grant = await limiter.acquire("k", limits, 0)
    assert grant.headers["x-ratelimit-remaining-requests"] == "0"
    assert limiter.state["k"].req == 0.0


async def test_keys_have_their_own_buckets(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(rpm=1)
    await limiter.acquire("a", limits, 0)
    await limiter.acquire("b", limits, 0)
    with pytest.raises(RateLimitError):
        await limiter.acquire("a", limits, 0)


async def test_tokens_bucket_refuses_with_the_wait_for_the_reservation(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(tpm=100)
    await limiter.acquire("k", limits, 80)
    with pytest.raises(RateLimitError) as refused:
        await limiter.acquire("k", limits, 50)
    # 20 left, 30 more needed at 100 per minute: 18 s
    assert refused.value.message == ("Rate limit reached for tokens per minute (limit 100): "
                                     "requested 50. Retry after 18.000s.")
    assert refused.value.headers["retry-after"] == "18"
    assert limiter.state["k"].tok == 20.0


async def test_too_large_is_never_retried(clock: Clock) -> None:
    limiter = MemoryLimiter()
    with pytest.raises(RateLimitError) as refused:
        await limiter.acquire("k", Limits(tpm=100), 101)
    assert refused.value.headers["x-should-retry"] == "false"
    assert "retry-after" not in refused.value.headers
    assert refused.value.message == "Request needs 101 tokens, more than this key's limit of 100 per minute"


async def test_concurrency_slot_is_given_back_on_release(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(max_concurrent=1)
    grant = await limiter.acquire("k", limits, 0)
    assert grant.headers == {}
    with pytest.raises(RateLimitError) as refused:
        await limiter.acquire("k", limits, 0)
    assert refused.value.message == "Too many concurrent requests (limit 1). Retry after 1.000s."
    assert refused.value.headers == {"retry-after": "1", "retry-after-ms": "1000"}
    await limiter.release("k", limits, grant, 0)
    assert limiter.state["k"].running == 0
    await limiter.release("k", limits, grant, 0)  # a double release never goes below zero
    assert limiter.state["k"].running == 0
    await limiter.acquire("k", limits, 0)
    assert limiter.state["k"].running == 1


async def test_release_refunds_unused_tokens(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(tpm=100)
    grant = await limiter.acquire("k", limits, 60)
    clock.now += 6.0  # +10 tokens refilled
    await limiter.release("k", limits, grant, 25)
    s = limiter.state["k"]
    assert (s.tok, s.tok_t) == (85.0, 1006.0)  # 40 + 10 + (60 - 25)


async def test_release_charges_tokens_beyond_the_reservation(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(tpm=100)
    grant = await limiter.acquire("k", limits, 10)
    await limiter.release("k", limits, grant, 50)
    assert limiter.state["k"].tok == 50.0  # 90 + 10 - 50


async def test_release_never_fills_above_the_limit(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(tpm=100)
    grant = await limiter.acquire("k", limits, 10)
    await limiter.release("k", limits, Grant(reserved=40), 0)
    assert limiter.state["k"].tok == 100.0
    assert grant.reserved == 10


async def test_release_without_token_limit_leaves_tokens_alone(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(rpm=5)
    grant = await limiter.acquire("k", limits, 30)
    clock.now += 1.0
    await limiter.release("k", limits, grant, 0)
    s = limiter.state["k"]
    assert (s.req, s.tok, s.tok_t, s.running) == (4.0, 0.0, 1000.0, 0)


async def test_release_of_an_unknown_key_is_a_no_op(clock: Clock) -> None:
    limiter = MemoryLimiter()
    await limiter.release("nobody", Limits(rpm=1), Grant(reserved=5), 0)
    assert limiter.state == {}
    assert await limiter.close() is None


async def test_buckets_that_are_not_limited_stay_empty(clock: Clock) -> None:
    limiter = MemoryLimiter()
    await limiter.acquire("k", Limits(tpm=100), 10)
    s = limiter.state["k"]
    assert (s.req, s.req_t, s.tok) == (0.0, 1000.0, 90.0)


async def test_each_release_gives_back_one_slot(clock: Clock) -> None:
    limiter = MemoryLimiter()
    limits = Limits(max_concurrent=3)
    grants = [await limiter.acquire("k", limits, 0) for _ in range(3)]
    await limiter.release("k", limits, grants[0], 0)
    assert limiter.state["k"].running == 2
