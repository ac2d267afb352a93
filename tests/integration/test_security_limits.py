"""Rate limits over HTTP, in-process and in real Redis: 429 bodies, Retry-After from the bucket,
x-ratelimit-* headers on every response, reserve-then-reconcile, concurrency slots given back,
Redis outages (fail-open and fail-closed) and leases of dead replicas lapsing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.backends.fake import FakeBackend
from gateway.errors import RateLimitError, ServiceUnavailableError
from gateway.limits.base import Limits
from gateway.limits.redis_limiter import RedisLimiter
from gateway.registry import Registry
from tests.integration.conftest import REDIS_URL
from tests.integration.keys_support import CHAT, PrivateRedis, auth, new_key, security_client

RATE_HEADERS = {f"x-ratelimit-{k}-{u}" for k in ("limit", "remaining", "reset")
                for u in ("requests", "tokens")}


@pytest.fixture(params=["memory", "redis"])
def where(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings for in-process limits or limits in the shared Redis (a prefix of our own)."""
    if request.param == "memory":
        return {}
    return {"redis_url": REDIS_URL, "redis_prefix": request.getfixturevalue("redis_prefix")}


@pytest.fixture()
def client(chat_registry: Registry, sqlite_url: str, where: dict[str, Any]) -> Iterator[TestClient]:
    with security_client(chat_registry, sqlite_url, **where) as c:
        yield c


def test_requests_per_minute_429_with_a_real_retry_after(client: TestClient) -> None:
    key = auth(new_key(client, rpm=2)["key"])
    first = client.post("/v1/chat/completions", json=CHAT, headers=key)
    assert (first.headers["x-ratelimit-limit-requests"],
            first.headers["x-ratelimit-remaining-requests"]) == ("2", "1")
    assert first.headers["x-ratelimit-reset-requests"] in ("30s", "30.0s", "29.9s")
    assert client.post("/v1/chat/completions", json=CHAT, headers=key).status_code == 200
    r = client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=key)
    assert r.status_code == 429
    error = r.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("rate_limit_error", None,
                                                              "rate_limit_exceeded")
    assert error["message"].startswith("Rate limit reached for requests per minute (limit 2)")
    # rpm=2 refills one request in 30 s: the wait is what is left of those 30 s.
    assert 28 <= int(r.headers["retry-after"]) <= 30
    assert 28_000 <= int(r.headers["retry-after-ms"]) <= 30_000
    assert r.headers["x-ratelimit-remaining-requests"] == "0"
    assert r.headers["x-ratelimit-reset-requests"] in ("59.9s", "59.8s", "1m0s")


def test_rate_headers_on_every_response(client: TestClient) -> None:
    key = auth(new_key(client, rpm=100, tpm=10_000)["key"])
    plain = client.post("/v1/chat/completions", json=CHAT, headers=key)
    stream = client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=key)
    for r in (plain, stream):
        assert r.status_code == 200 and set(r.headers) >= RATE_HEADERS
    assert int(stream.headers["x-ratelimit-remaining-requests"]) == 98
    key = auth(new_key(client, rpm=1, tpm=10_000)["key"])
    client.post("/v1/chat/completions", json=CHAT, headers=key)
    refused = client.post("/v1/chat/completions", json=CHAT, headers=key)
    assert refused.status_code == 429 and set(refused.headers) >= RATE_HEADERS


def test_tokens_per_minute_reserve_and_reconcile(client: TestClient) -> None:
    key = auth(new_key(client, tpm=100)["key"])
    too_big = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 200}, headers=key)
    assert too_big.status_code == 429 and "more than this key's limit" in too_big.text
    assert "retry-after" not in too_big.headers and too_big.headers["x-should-retry"] == "false"
    # Reserves 3 prompt tokens (estimated: no tokenizer here) + 60; uses 2 + 3: the rest of the
    # reservation comes back.
    ok = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 60}, headers=key)
    assert ok.status_code == 200 and 37 <= int(ok.headers["x-ratelimit-remaining-tokens"]) <= 38
    again = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 60}, headers=key)
    assert again.status_code == 200, "the unused reservation was not given back"
    assert 32 <= int(again.headers["x-ratelimit-remaining-tokens"]) <= 34
    r = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 95}, headers=key)
    assert r.status_code == 429 and "tokens per minute (limit 100)" in r.json()["error"]["message"]
    # About 7 tokens are missing; the bucket refills 100 tokens a minute: about 4 s.
    assert 3 <= int(r.headers["retry-after"]) <= 6


@pytest.mark.parametrize("failure", ["none", "before", "mid"])
def test_concurrency_slot_comes_back(chat_registry: Registry, sqlite_url: str,
                                     where: dict[str, Any], failure: str) -> None:
    error = ServiceUnavailableError("down")
    backend = FakeBackend(ready={"chat_a"}, fail_before=error if failure == "before" else None,
                          fail_after=1 if failure == "mid" else None, fail_mid=error)
    status = 503 if failure == "before" else 200
    with security_client(chat_registry, sqlite_url, backend=backend, **where) as c:
        key = auth(new_key(c, max_concurrent=1)["key"])
        for stream in (True, False, True, False):
            r = c.post("/v1/chat/completions", json={**CHAT, "stream": stream}, headers=key)
            expected = 503 if failure == "mid" and not stream else status
            assert r.status_code == expected, r.text


def test_redis_down_fail_open(chat_registry: Registry, sqlite_url: str,
                              private_redis: PrivateRedis) -> None:
    with security_client(chat_registry, sqlite_url, redis_url=private_redis.url) as c:
        key = auth(new_key(c, rpm=1)["key"])
        assert c.post("/v1/chat/completions", json=CHAT, headers=key).status_code == 200
        assert c.post("/v1/chat/completions", json=CHAT, headers=key).status_code == 429
        private_redis.stop()
        for _ in range(3):  # admitted uncounted, without rate headers
            r = c.post("/v1/chat/completions", json=CHAT, headers=key)
            assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
        private_redis.start()  # empty: the budget starts full again
        time.sleep(1.1)  # the limiter retries Redis after 1 s
        assert c.post("/v1/chat/completions", json=CHAT, headers=key).status_code == 200
        assert c.post("/v1/chat/completions", json=CHAT, headers=key).status_code == 429


def test_redis_down_fail_closed(chat_registry: Registry, sqlite_url: str,
                                private_redis: PrivateRedis) -> None:
    with security_client(chat_registry, sqlite_url, redis_url=private_redis.url,
                         redis_fail_open=False) as c:
        key = auth(new_key(c, rpm=10)["key"])
        unlimited = auth(new_key(c)["key"])
        assert c.post("/v1/chat/completions", json=CHAT, headers=key).status_code == 200
        private_redis.stop()
        started = time.monotonic()
        for _ in range(5):
            r = c.post("/v1/chat/completions", json=CHAT, headers=key)
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "rate_limiter_unavailable"
        assert time.monotonic() - started < 2, "every request waited for a Redis timeout"
        assert c.post("/v1/chat/completions", json=CHAT, headers=unlimited).status_code == 200
        private_redis.start()
        time.sleep(1.1)
        assert c.post("/v1/chat/completions", json=CHAT, headers=key).status_code == 200


async def test_a_dead_replicas_concurrency_lease_lapses(redis_prefix: str) -> None:
    limits = Limits(max_concurrent=1)
    dead = RedisLimiter(REDIS_URL, prefix=redis_prefix, lease_ttl_s=1.0)
    live = RedisLimiter(REDIS_URL, prefix=redis_prefix, lease_ttl_s=1.0)
    await dead.acquire("k", limits, 0)  # never released: the replica "died"
    await dead.close()
    with pytest.raises(RateLimitError) as info:
        await live.acquire("k", limits, 0)
    assert info.value.headers["retry-after"] == "1"
    await asyncio.sleep(1.1)
    grant = await live.acquire("k", limits, 0)
    await live.release("k", limits, grant, 0)
    await live.release("k", limits, await live.acquire("k", limits, 0), 0)
    await live.close()


async def test_replicas_racing_on_redis_get_exactly_the_limit(redis_prefix: str) -> None:
    limiters = [RedisLimiter(REDIS_URL, prefix=redis_prefix) for _ in range(3)]
    limits = Limits(rpm=10, tpm=1000)

    async def one(i: int) -> bool:
        try:
            await limiters[i % 3].acquire("k", limits, 50)
        except RateLimitError:
            return False
        return True

    granted = await asyncio.gather(*(one(i) for i in range(60)))
    assert sum(granted) == 10
    for limiter in limiters:
        await limiter.close()


async def test_a_lost_reply_after_the_script_ran_gives_the_lease_back(redis_prefix: str) -> None:
    """The script took a lease, then its reply timed out: the lease is returned by its id, so a
    max_concurrent=1 key is not locked out until the lease lapses."""
    from redis.exceptions import TimeoutError as RedisTimeout

    limits = Limits(max_concurrent=1)
    limiter = RedisLimiter(REDIS_URL, prefix=redis_prefix, lease_ttl_s=600.0, retry_s=0.05)
    real = limiter._acquire

    async def ran_then_lost(**kwargs: object) -> object:
        await real(**kwargs)
        raise RedisTimeout("reply lost")

    limiter._acquire = ran_then_lost  # type: ignore[assignment]  # the lowest seam: Redis's reply
    grant = await limiter.acquire("k", limits, 0)  # fail-open: admitted uncounted
    assert grant.counted is False
    await asyncio.gather(*limiter._pending)
    leases = f"{redis_prefix}limits:{{k}}:leases"
    assert await limiter.redis.zcard(leases) == 0
    limiter._acquire = real
    limiter._down_until = 0.0
    again = await limiter.acquire("k", limits, 0)  # not locked out
    assert again.counted and again.lease
    assert await limiter.redis.zcard(leases) == 1
    await limiter.release("k", limits, again, 0)
    assert await limiter.redis.zcard(leases) == 0
    await limiter.close()
