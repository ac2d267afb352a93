"""Usage buckets: per key, model, minute and hour; errors and rate-limit refusals; retention."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.usage import UsageQuery, UsageSeries
from gateway.auth.principal import OpenAdmission, Principal
from gateway.auth.store import HOUR, MINUTE, KeyStore
from gateway.auth.usage import CountingGuard, UsageRecorder
from gateway.errors import InvalidRequestError, PermissionDeniedError, RateLimitError
from gateway.registry import ModelEntry

ENTRY = ModelEntry(id="m", triton_model="m")


class Inner:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        return Principal(key_id="k")

    async def admit(self, principal: Principal, entry: ModelEntry, reserve_tokens: int) -> OpenAdmission:
        if self.refuse:
            raise RateLimitError("slow down")
        return OpenAdmission({"x-ratelimit-limit-requests": "5"})


@pytest.fixture()
async def store(tmp_path: Path) -> Any:
    s = KeyStore(f"sqlite+aiosqlite:///{tmp_path / 'k.db'}")
    await s.migrate()
    yield s
    await s.close()


def _row(recorder: UsageRecorder, width: int) -> list[int]:
    [(key, counts)] = [(k, v) for k, v in recorder._buckets.items() if k[0] == width]
    assert key[2:] == ("k", "m") and key[1] % width == 0 and time.time() - key[1] < width
    return counts


async def test_success_error_and_refusal_are_counted_in_minute_and_hour_buckets(store: KeyStore) -> None:
    recorder = UsageRecorder(store)
    guard = CountingGuard(Inner(), recorder)
    admission = await guard.admit(Principal(key_id="k"), ENTRY, 10)
    assert admission.headers == {"x-ratelimit-limit-requests": "5"}
    await admission.finish(7, 3)
    await admission.finish(7, 3)  # idempotent
    failed = await guard.admit(Principal(key_id="k"), ENTRY, 10)
    try:
        raise ValueError("backend broke")
    except ValueError:
        await failed.finish(5, 1)  # finished while an error is handled: an error
    with pytest.raises(RateLimitError):
        await CountingGuard(Inner(refuse=True), recorder).admit(Principal(key_id="k"), ENTRY, 1)
    for width in (MINUTE, HOUR):
        assert _row(recorder, width) == [2, 12, 4, 1, 1]
    await recorder.flush()
    rows = await store.buckets(MINUTE, 0, key_id="k", model="m")
    assert [(r["requests"], r["prompt_tokens"], r["completion_tokens"], r["errors"], r["rate_limited"])
            for r in rows] == [(2, 12, 4, 1, 1)]
    assert await store.buckets(MINUTE, 0, key_id="other") == []


async def test_flushes_add_up_and_retention_purges_old_buckets(store: KeyStore) -> None:
    now = int(time.time())
    old_minute, old_hour = now - 3 * 86400, now - 100 * 86400
    await store.add_buckets([(MINUTE, old_minute, "k", "m", (1, 1, 1, 0, 0)),
                             (HOUR, old_hour, "k", "m", (1, 1, 1, 0, 0)),
                             (HOUR, now - now % HOUR, "k", "m", (2, 0, 0, 0, 0))])
    await store.add_buckets([(HOUR, now - now % HOUR, "k", "m", (3, 0, 0, 1, 0))])
    recorder = UsageRecorder(store)
    await recorder.purge()
    assert await store.buckets(MINUTE, 0) == []
    [hour] = await store.buckets(HOUR, 0)
    assert (hour["requests"], hour["errors"]) == (5, 1)


async def test_series_fill_every_point_and_30_days_sum_hours_into_days(store: KeyStore) -> None:
    now = 1_700_000_000 - 1_700_000_000 % 86400 + 5 * 3600 + 30  # 05:00:30 UTC
    await store.add_buckets([(HOUR, now - now % 3600, "k", "m", (1, 10, 0, 0, 0)),
                             (HOUR, now - now % 3600 - 3 * 3600, "k", "m", (2, 20, 0, 0, 0)),
                             (HOUR, now - now % 3600 - 86400, "k", "m", (4, 0, 0, 0, 0))])

    class Flush:
        async def flush(self) -> None:
            return None

    series = UsageSeries(store, Flush())  # type: ignore[arg-type]
    admin = Principal(key_id="admin", admin=True)
    month = await series.series(UsageQuery.parse({"range": "30d"}, admin), now=now)
    assert len(month["data"]) == 30 and month["width_s"] == 86400
    assert [p["requests"] for p in month["data"][-2:]] == [4, 3]
    assert month["data"][-1]["start"] == now - now % 86400
    day = await series.series(UsageQuery.parse({"range": "day", "model": "m"}, admin), now=now)
    assert [p["requests"] for p in day["data"][-4:]] == [2, 0, 0, 1]
    assert sum(p["prompt_tokens"] for p in day["data"]) == 30
    text = await series.csv(UsageQuery.parse({"range": "day"}, admin), now=now)
    assert text.splitlines()[0] == ("start,width_s,key_id,model,requests,prompt_tokens,"
                                    "completion_tokens,errors,rate_limited")
    assert text.splitlines()[-1] == "2023-11-14T05:00:00Z,3600,k,m,1,10,0,0,0"


def test_queries_hold_user_keys_to_their_own_usage() -> None:
    user = Principal(key_id="u")
    assert UsageQuery.parse({}, user) == UsageQuery("day", "u", None)
    assert UsageQuery.parse({"key_id": "u", "range": "hour"}, user).key_id == "u"
    with pytest.raises(PermissionDeniedError):
        UsageQuery.parse({"key_id": "v"}, user)
    with pytest.raises(InvalidRequestError):
        UsageQuery.parse({"range": "7d"}, user)
    assert UsageQuery.parse({"key_id": "v"}, Principal(admin=True)).key_id == "v"
