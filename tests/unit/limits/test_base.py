"""Bucket arithmetic, the x-ratelimit-* headers, Retry-After and the 429 messages."""

from __future__ import annotations

import pytest

from gateway.errors import RateLimitError
from gateway.limits.base import Grant, Limits, check, duration, headers, refill, refusal

ALL = Limits(rpm=30, tpm=1000, max_concurrent=2)


def test_limits_none_only_when_every_limit_is_unset() -> None:
    assert Limits().none is True
    assert Limits(rpm=0, tpm=0, max_concurrent=0).none is True
    assert Limits(rpm=1).none is False
    assert Limits(tpm=1).none is False
    assert Limits(max_concurrent=1).none is False


def test_grant_defaults() -> None:
    grant = Grant(reserved=7)
    assert (grant.reserved, grant.headers, grant.counted, grant.lease) == (7, {}, True, "")


@pytest.mark.parametrize(("seconds", "text"), [
    (-0.5, "0ms"), (0.0, "0ms"), (0.02, "20ms"), (0.9995, "999ms"), (1.0, "1s"), (1.5, "1.5s"),
    (12.345, "12.3s"), (59.4, "59.4s"), (59.5, "1m0s"), (125.4, "2m5s"), (360.0, "6m0s"),
])
def test_duration_uses_openais_reset_format(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_headers_for_both_buckets() -> None:
    assert headers(ALL, 20.0, 250.7) == {
        "x-ratelimit-limit-requests": "30",
        "x-ratelimit-remaining-requests": "20",
        "x-ratelimit-reset-requests": "20s",  # 10 requests at 30/min
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "250",
        "x-ratelimit-reset-tokens": "45s",  # 749.3 tokens at 1000/min: 44.96s
    }


def test_headers_round_remaining_down_and_never_below_zero() -> None:
    got = headers(ALL, 0.5, -3.2)
    assert got["x-ratelimit-remaining-requests"] == "0"
    assert got["x-ratelimit-remaining-tokens"] == "0"
    assert got["x-ratelimit-reset-requests"] == "59s"
    assert got["x-ratelimit-reset-tokens"] == "1m0s"


def test_headers_only_for_limits_that_are_set() -> None:
    assert headers(Limits(max_concurrent=3), 0.0, 0.0) == {}
    assert list(headers(Limits(rpm=5), 5.0, 0.0)) == [
        "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"]
    assert headers(Limits(tpm=600), 0.0, 300.0) == {
        "x-ratelimit-limit-tokens": "600", "x-ratelimit-remaining-tokens": "300",
        "x-ratelimit-reset-tokens": "30s"}


def test_refusal_for_requests_carries_retry_after_and_the_buckets() -> None:
    err = refusal(ALL, 2.0001, "requests", 0.4, 500.0)
    assert isinstance(err, RateLimitError)
    assert (err.status, err.code, err.param) == (429, "rate_limit_exceeded", None)
    assert err.message == "Rate limit reached for requests per minute (limit 30). Retry after 2.000s."
    assert err.headers == {
        "x-ratelimit-limit-requests": "30", "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "59.2s",
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "500",
        "x-ratelimit-reset-tokens": "30s",
        "retry-after": "3", "retry-after-ms": "2001",
    }


def test_refusal_retry_after_is_at_least_one() -> None:
    err = refusal(Limits(max_concurrent=2), 0.0, "concurrency", 0.0, 0.0)
    assert err.headers == {"retry-after": "1", "retry-after-ms": "1"}
    assert err.message == "Too many concurrent requests (limit 2). Retry after 0.000s."
    small = refusal(Limits(max_concurrent=2), 0.0004, "concurrency", 0.0, 0.0)
    assert small.headers == {"retry-after": "1", "retry-after-ms": "1"}


def test_refusal_for_tokens_names_what_was_requested() -> None:
    err = refusal(Limits(tpm=1000), 12.3456, "tokens", 0.0, 100.0, need=700)
    assert err.message == ("Rate limit reached for tokens per minute (limit 1000): requested 700. "
                           "Retry after 12.346s.")
    assert err.headers["retry-after"] == "13"
    assert err.headers["retry-after-ms"] == "12346"


def test_refusal_too_large_says_do_not_retry() -> None:
    err = refusal(Limits(tpm=1000), 60.0, "too_large", 0.0, 1000.0, need=1500)
    assert err.message == "Request needs 1500 tokens, more than this key's limit of 1000 per minute"
    assert err.headers == {"x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "1000",
                           "x-ratelimit-reset-tokens": "0ms", "x-should-retry": "false"}
    assert err.code == "rate_limit_exceeded"


def test_check_admits_within_every_limit() -> None:
    assert check(Limits(), 0.0, 0.0, 100, 10**9) == (0.0, "")
    assert check(ALL, 1.0, 700.0, 1, 700) == (0.0, "")
    assert check(Limits(tpm=100), 0.0, 100.0, 0, 100) == (0.0, "")


def test_check_reasons_and_waits() -> None:
    assert check(Limits(tpm=100), 0.0, 100.0, 0, 101) == (60.0, "too_large")
    assert check(Limits(max_concurrent=2), 0.0, 0.0, 2, 0) == (1.0, "concurrency")
    assert check(Limits(max_concurrent=2), 0.0, 0.0, 3, 0) == (1.0, "concurrency")
    assert check(Limits(rpm=30), 0.25, 0.0, 0, 0) == (1.5, "requests")
    assert check(Limits(tpm=1000), 0.0, 400.0, 0, 700) == (18.0, "tokens")


def test_check_order_too_large_then_concurrency_then_requests_then_tokens() -> None:
    limits = Limits(rpm=30, tpm=100, max_concurrent=1)
    assert check(limits, 0.0, 0.0, 1, 200) == (60.0, "too_large")
    assert check(limits, 0.0, 0.0, 1, 50) == (1.0, "concurrency")
    assert check(limits, 0.0, 0.0, 0, 50) == (2.0, "requests")
    assert check(limits, 1.0, 0.0, 0, 50) == (30.0, "tokens")


def test_refill() -> None:
    assert refill(None, 0.0, 30, 100.0) == 30.0  # a new bucket is full
    assert refill(10.0, 100.0, 30, 110.0) == 15.0  # 30 per minute: 5 in 10 s
    assert refill(29.0, 0.0, 30, 100.0) == 30.0  # never above the cap
    assert refill(-4.0, 50.0, 60, 50.0) == -4.0


def test_refusal_need_defaults_to_zero() -> None:
    err = refusal(Limits(tpm=10), 1.0, "tokens", 0.0, 0.0)
    assert err.message == "Rate limit reached for tokens per minute (limit 10): requested 0. Retry after 1.000s."
