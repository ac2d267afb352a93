"""Keys (format, digest, display prefix, bearer parsing) and the pure parts of the limits."""

from __future__ import annotations

import hashlib

import pytest

from gateway.auth.keys import PREFIX, bearer, digest, display_prefix, generate_key, same_digest, well_formed
from gateway.limits.base import Limits, check, duration, headers, refill, refusal


def test_generated_keys_are_well_formed_random_and_long() -> None:
    keys = {generate_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert key.startswith(PREFIX) and well_formed(key)
        assert len(key) - len(PREFIX) >= 43  # 32 random bytes, url-safe base64


@pytest.mark.parametrize("key", [
    "", "sk-chungus-", "sk-chungus-short", "sk-other-0123456789abcdef", "SK-CHUNGUS-0123456789abcdef",
    "sk-chungus-0123456789abcdef\n", "sk-chungus-0123456789abc def", "sk-chungus-" + "a" * 129,
    "sk-chungus-0123456789abcdéf",
])
def test_malformed_keys(key: str) -> None:
    assert not well_formed(key)


def test_digest_is_sha256_hex_and_prefix_is_not_enough_to_use() -> None:
    key = generate_key()
    assert digest(key) == hashlib.sha256(key.encode()).hexdigest()
    shown = display_prefix(key)
    assert shown == key[:15] + "..." and not well_formed(shown.removesuffix("..."))


def test_same_digest() -> None:
    a, b = digest("sk-chungus-aaaaaaaaaaaaaaaa"), digest("sk-chungus-bbbbbbbbbbbbbbbb")
    assert same_digest(a, a) and not same_digest(a, b) and not same_digest(a, a[:-1])


@pytest.mark.parametrize(("header", "token"), [
    (None, None), ("", None), ("Bearer", None), ("Bearer   ", None), ("Basic abc", None),
    ("Bearer sk-chungus-x", "sk-chungus-x"), ("bearer  sk-chungus-x ", "sk-chungus-x"),
    ("  Bearer sk-chungus-x", "sk-chungus-x"),
])
def test_bearer(header: str | None, token: str | None) -> None:
    assert bearer(header) == token


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0, "0ms"), (0.012, "12ms"), (0.9999, "999ms"), (1.0, "1s"), (1.5, "1.5s"), (12.34, "12.3s"),
    (59.4, "59.4s"), (59.7, "1m0s"), (60.0, "1m0s"), (125.4, "2m5s"), (360.0, "6m0s"), (-1, "0ms"),
])
def test_duration_is_openais_format(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_headers_only_for_the_limits_that_are_set() -> None:
    assert headers(Limits(), 0, 0) == {}
    assert headers(Limits(rpm=60, tpm=1000), 59.0, 250.0) == {
        "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59",
        "x-ratelimit-reset-requests": "1s", "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "250", "x-ratelimit-reset-tokens": "45s"}
    assert set(headers(Limits(max_concurrent=3), 0, 0)) == set()


def test_check_order_and_waits() -> None:
    limits = Limits(rpm=6, tpm=600, max_concurrent=2)
    assert check(limits, 6, 600, 0, 100) == (0.0, "")
    assert check(limits, 6, 600, 0, 601) == (60.0, "too_large")
    assert check(limits, 6, 600, 2, 1) == (1.0, "concurrency")
    assert check(limits, 0.25, 600, 0, 1) == pytest.approx((7.5, "requests"))  # 0.75 req at 0.1/s
    assert check(limits, 6, 50, 0, 110) == pytest.approx((6.0, "tokens"))  # 60 tokens at 10/s


def test_refill_is_continuous_and_capped() -> None:
    assert refill(None, 0, 60, 100) == 60
    assert refill(0, 10, 60, 40) == 30
    assert refill(-30, 0, 60, 30) == 0
    assert refill(50, 0, 60, 1000) == 60


def test_refusals() -> None:
    limits = Limits(rpm=2, tpm=100)
    err = refusal(limits, 12.3456, "requests", 0.2, 100)
    assert (err.status, err.code, err.type) == (429, "rate_limit_exceeded", "rate_limit_error")
    assert err.headers["retry-after"] == "13" and err.headers["retry-after-ms"] == "12346"
    assert err.headers["x-ratelimit-remaining-requests"] == "0"
    assert "requests per minute (limit 2)" in err.message
    tiny = refusal(limits, 0.0004, "tokens", 2, 99.9, need=100)
    assert tiny.headers["retry-after"] == "1" and tiny.headers["retry-after-ms"] == "1"
    never = refusal(limits, 60, "too_large", 2, 100, need=500)
    assert "retry-after" not in never.headers and never.headers["x-should-retry"] == "false"
    assert "500 tokens" in never.message
