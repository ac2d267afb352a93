"""Refusal reasons: which limit refused, read from the limiter's own 429s."""

from __future__ import annotations

import pytest

from gateway.errors import AuthenticationError, RateLimitError
from gateway.limits.base import Limits, refusal
from gateway.metrics.middleware import refusal_reason

LIMITS = Limits(rpm=30, tpm=1000, max_concurrent=2)


@pytest.mark.parametrize("reason", ["requests", "tokens", "concurrency", "too_large"])
def test_each_limiter_refusal_names_its_limit(reason: str) -> None:
    assert refusal_reason(refusal(LIMITS, 1.5, reason, 0.0, 0.0, need=2000)) == reason


def test_other_errors_are_named_by_code() -> None:
    auth = RateLimitError("Too many failed authentication attempts", code="too_many_auth_failures")
    assert refusal_reason(auth) == "too_many_auth_failures"
    assert refusal_reason(RateLimitError("x")) == "rate_limit_exceeded"
    assert refusal_reason(AuthenticationError("bad key")) == "invalid_api_key"
    assert refusal_reason(RateLimitError("Rate limit reached for requests", code="other")) == "other"
