"""Two gateway processes (uvicorn, real HTTP, the fake backend) on one PostgreSQL and one Redis:
the combined allowance is the limit, not twice it; a revocation reaches the other replica within
the cache TTL; a client that leaves mid-stream gives its concurrency slot back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import REDIS_URL, _delete_prefix, _pg
from tests.integration.keys_support import ADMIN, CHAT, GatewayServer, auth

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[GatewayServer]]:
    database = f"chungus_test_{uuid.uuid4().hex[:12]}"
    prefix = f"chungus-test:{uuid.uuid4().hex[:10]}:"
    asyncio.run(_pg(f"CREATE DATABASE {database}"))
    env = {"CHUNGUS_DATABASE_URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}",
           "CHUNGUS_REDIS_URL": REDIS_URL, "CHUNGUS_REDIS_PREFIX": prefix,
           "CHUNGUS_KEY_CACHE_TTL_S": "1"}
    root: Path = tmp_path_factory.mktemp("replicas")
    servers = [GatewayServer(root / f"gw{i}", env) for i in range(2)]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()
        _delete_prefix(prefix)
        asyncio.run(_pg(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))


def _key(gw: GatewayServer, **fields: object) -> dict[str, str]:
    r = httpx.post(gw.base_url + "/admin/keys", json={"name": "replicas", **fields},
                   headers=auth(ADMIN))
    assert r.status_code == 201, r.text
    return dict(r.json())


def _chat(gw: GatewayServer, key: str, body: dict[str, object] = CHAT) -> httpx.Response:
    return httpx.post(gw.base_url + "/v1/chat/completions", json=body, headers=auth(key), timeout=30)


def test_alternating_requests_share_one_budget(replicas: list[GatewayServer]) -> None:
    key = _key(replicas[0], rpm=6)["key"]
    codes = [_chat(replicas[i % 2], key).status_code for i in range(12)]
    assert codes == [200] * 6 + [429] * 6


def test_a_concurrent_burst_gets_exactly_the_limit(replicas: list[GatewayServer]) -> None:
    key = _key(replicas[1], rpm=10, tpm=100_000)["key"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(lambda i: _chat(replicas[i % 2], key).status_code, range(40)))
    assert codes.count(200) == 10 and codes.count(429) == 30


def test_tokens_per_minute_shared(replicas: list[GatewayServer]) -> None:
    key = _key(replicas[0], tpm=100)["key"]
    body = {**CHAT, "max_tokens": 40}  # reserves 42, uses 5: 37 come back after each call
    assert _chat(replicas[0], key, body).status_code == 200
    r = _chat(replicas[1], key, body)
    assert r.status_code == 200 and int(r.headers["x-ratelimit-remaining-tokens"]) <= 53
    r = _chat(replicas[0], key, {**CHAT, "max_tokens": 95})
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 5


def test_revocation_on_one_replica_reaches_the_other(replicas: list[GatewayServer]) -> None:
    created = _key(replicas[0])
    assert httpx.get(replicas[1].base_url + "/v1/models", headers=auth(created["key"])).status_code == 200
    r = httpx.post(f"{replicas[0].base_url}/admin/keys/{created['id']}/revoke", headers=auth(ADMIN))
    assert r.status_code == 200
    revoked_at = time.monotonic()
    while httpx.get(replicas[1].base_url + "/v1/models",
                    headers=auth(created["key"])).status_code == 200:
        assert time.monotonic() - revoked_at < 1.5, "the other replica still accepts the key"
        time.sleep(0.05)


def test_disconnect_mid_stream_releases_the_slot_on_every_replica(
        replicas: list[GatewayServer]) -> None:
    key = _key(replicas[0], max_concurrent=1)["key"]
    body = {"model": "slow", "stream": True, "max_tokens": 400,
            "messages": [{"role": "user", "content": "go"}]}
    with httpx.Client(timeout=30) as http:
        with http.stream("POST", replicas[0].base_url + "/v1/chat/completions", json=body,
                         headers=auth(key)) as r:
            assert r.status_code == 200
            lines = r.iter_lines()
            next(lines)
            busy = _chat(replicas[1], key)  # the slot is taken, seen from the other replica
            assert busy.status_code == 429 and busy.json()["error"]["code"] == "rate_limit_exceeded"
        left_at = time.monotonic()  # the stream would run 20 s more; the client just left
    while _chat(replicas[1], key).status_code != 200:
        assert time.monotonic() - left_at < 5, "the slot was not released after the client left"
        time.sleep(0.1)
