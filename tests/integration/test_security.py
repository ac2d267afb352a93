"""Keys, permissions, limits, activation and usage: the app with the fake backend on real SQLite,
PostgreSQL and Redis."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.backends.fake import FakeBackend
from gateway.errors import RateLimitError, ServiceUnavailableError
from gateway.registry import ModelEntry, Registry
from gateway.security.limits import Limits, MemoryLimiter, RedisLimiter
from gateway.security.store import MIGRATIONS, KeyStore, api_keys, schema_version
from gateway.settings import Settings
from tests.integration.conftest import REDIS_URL

ADMIN = "sk-chungus-admin-key-for-tests-000000"
CHAT = {"model": "chat-a", "messages": [{"role": "user", "content": "hi there"}]}


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    (tmp_path / "t.jinja").write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    return Registry(models=(
        ModelEntry(id="chat-a", triton_model="chat_a", chat_template="t.jinja"),
        ModelEntry(id="chat-b", triton_model="chat_b", chat_template="t.jinja"),
    ), base_dir=str(tmp_path))


def _client(registry: Registry, database_url: str, redis_url: str | None = None,
            backend: FakeBackend | None = None) -> TestClient:
    settings = Settings(admin_key=ADMIN, database_url=database_url, redis_url=redis_url,
                        access_log=False, key_cache_ttl_s=30)
    backend = backend or FakeBackend(ready={"chat_a", "chat_b"})
    return TestClient(create_app(settings, backend, registry=registry))


@pytest.fixture()
def client(registry: Registry, database_url: str) -> Iterator[TestClient]:
    with _client(registry, database_url) as c:
        yield c


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _new_key(client: TestClient, **fields: object) -> dict:
    r = client.post("/admin/keys", json=fields, headers=_auth(ADMIN))
    assert r.status_code == 201, r.text
    return r.json()


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer", "Bearer not-a-key",
                                    "Bearer sk-chungus-unknownunknownunknown12",
                                    "Bearer sk-chungus-" + "x" * 300])
def test_bad_keys_get_401(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"),
                         ("GET", "/api/v1/models")):
        r = client.request(method, path, json=CHAT, headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_api_key"
        assert r.json()["error"]["type"] == "invalid_request_error"


def test_created_key_works_and_is_shown_once(client: TestClient) -> None:
    created = _new_key(client, name="ci", owner="team-a")
    assert created["key"].startswith("sk-chungus-") and created["prefix"].endswith("...")
    assert client.post("/v1/chat/completions", json=CHAT, headers=_auth(created["key"])).status_code == 200
    listed = client.get("/admin/keys", headers=_auth(ADMIN)).json()["data"]
    assert [k["name"] for k in listed] == ["ci"]
    assert "key" not in listed[0] and "digest" not in listed[0]
    assert created["key"] not in client.get("/admin/keys", headers=_auth(ADMIN)).text


def test_revocation_takes_effect_at_once_on_this_replica(client: TestClient) -> None:
    created = _new_key(client)
    assert client.get("/v1/models", headers=_auth(created["key"])).status_code == 200
    r = client.post(f"/admin/keys/{created['id']}/revoke", headers=_auth(ADMIN))
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert client.get("/v1/models", headers=_auth(created["key"])).status_code == 401


def test_expired_key_is_refused(client: TestClient) -> None:
    created = _new_key(client, expires_in_s=0.5)
    assert client.get("/v1/models", headers=_auth(created["key"])).status_code == 200
    time.sleep(0.6)
    r = client.get("/v1/models", headers=_auth(created["key"]))
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]


def test_model_permission_is_403(client: TestClient) -> None:
    created = _new_key(client, allowed_models=["chat-b"])
    r = client.post("/v1/chat/completions", json=CHAT, headers=_auth(created["key"]))
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    ok = client.post("/v1/chat/completions", json={**CHAT, "model": "chat-b"},
                     headers=_auth(created["key"]))
    assert ok.status_code == 200


def test_admin_routes_need_an_admin_key(client: TestClient) -> None:
    created = _new_key(client)
    r = client.get("/admin/keys", headers=_auth(created["key"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"
    assert client.get("/admin/keys").status_code == 401
    assert client.get("/admin/keys/nope", headers=_auth(ADMIN)).status_code == 404
    bad = client.post("/admin/keys", json={"rpm": 0}, headers=_auth(ADMIN))
    assert bad.status_code == 400
    assert client.post("/admin/keys", json={"bogus": 1}, headers=_auth(ADMIN)).status_code == 400


def test_requests_per_minute_429_with_headers(client: TestClient) -> None:
    created = _new_key(client, rpm=2)
    first = client.post("/v1/chat/completions", json=CHAT, headers=_auth(created["key"]))
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    client.post("/v1/chat/completions", json=CHAT, headers=_auth(created["key"]))
    r = client.post("/v1/chat/completions", json={**CHAT, "stream": True},
                    headers=_auth(created["key"]))
    assert r.status_code == 429
    error = r.json()["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert 1 <= int(r.headers["retry-after"]) <= 30  # one request refills in 30 s at rpm=2
    assert 0 < int(r.headers["retry-after-ms"]) <= 30_000
    assert r.headers["x-ratelimit-remaining-requests"] == "0"


def test_tokens_per_minute_reserve_and_reconcile(client: TestClient) -> None:
    created = _new_key(client, tpm=100)
    key = _auth(created["key"])
    too_big = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 200}, headers=key)
    assert too_big.status_code == 429 and "more tokens" in too_big.json()["error"]["message"]
    # Reserves 2 + 60 tokens, uses 2 + 3: most of the reservation comes back.
    ok = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 60}, headers=key)
    assert ok.status_code == 200 and int(ok.headers["x-ratelimit-remaining-tokens"]) <= 38
    again = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 60}, headers=key)
    assert again.status_code == 200, "unused reservation was not given back"
    r = client.post("/v1/chat/completions", json={**CHAT, "max_tokens": 95}, headers=key)
    assert r.status_code == 429 and "tokens per minute" in r.json()["error"]["message"]


def test_model_activation(client: TestClient) -> None:
    assert {m["id"] for m in client.get("/v1/models", headers=_auth(ADMIN)).json()["data"]} == {
        "chat-a", "chat-b"}
    r = client.post("/admin/models/chat-a/deactivate", headers=_auth(ADMIN))
    assert r.json() == {"id": "chat-a", "active": False}
    assert [m["id"] for m in client.get("/v1/models", headers=_auth(ADMIN)).json()["data"]] == ["chat-b"]
    r = client.post("/v1/chat/completions", json=CHAT, headers=_auth(ADMIN))
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    models = client.get("/admin/models", headers=_auth(ADMIN)).json()["data"]
    assert {(m["id"], m["active"], m["ready"]) for m in models} == {("chat-a", False, True),
                                                                    ("chat-b", True, True)}
    client.post("/admin/models/chat-a/activate", headers=_auth(ADMIN))
    assert client.post("/v1/chat/completions", json=CHAT, headers=_auth(ADMIN)).status_code == 200
    assert client.post("/admin/models/nope/activate", headers=_auth(ADMIN)).status_code == 404


def test_usage_is_accounted_per_key(client: TestClient) -> None:
    created = _new_key(client)
    for _ in range(3):
        client.post("/v1/chat/completions", json=CHAT, headers=_auth(created["key"]))
    rows = client.get(f"/admin/usage?key_id={created['id']}", headers=_auth(ADMIN)).json()["data"]
    assert len(rows) == 1
    assert (rows[0]["requests"], rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (3, 6, 9)
    assert client.get(f"/admin/keys/{created['id']}", headers=_auth(ADMIN)).json()["last_used_at"]


def test_limits_shared_through_redis(registry: Registry, sqlite_url: str) -> None:
    with _client(registry, sqlite_url, REDIS_URL) as c:
        created = _new_key(c, rpm=3)
        codes = [c.post("/v1/chat/completions", json=CHAT, headers=_auth(created["key"])).status_code
                 for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]


@pytest.mark.parametrize("limiter_kind", ["memory", "redis"])
async def test_concurrency_slot_is_released_on_finish(limiter_kind: str) -> None:
    limiter = MemoryLimiter() if limiter_kind == "memory" else RedisLimiter(REDIS_URL)
    limits = Limits(max_concurrent=1)
    key = f"conc-{time.time_ns()}"
    grant = await limiter.acquire(key, limits, 0)
    with pytest.raises(RateLimitError) as info:
        await limiter.acquire(key, limits, 0)
    assert info.value.headers["retry-after"] == "1"
    await limiter.release(key, limits, grant, 0)
    await limiter.release(key, limits, await limiter.acquire(key, limits, 0), 0)
    await limiter.close()


async def test_redis_down_fail_open_and_fail_closed() -> None:
    down = "redis://127.0.0.1:1/0"
    opened = RedisLimiter(down, fail_open=True)
    grant = await opened.acquire("k", Limits(rpm=1), 1)
    assert grant.counted is False and grant.headers == {}
    await opened.release("k", Limits(rpm=1), grant, 1)
    closed = RedisLimiter(down, fail_open=False)
    with pytest.raises(ServiceUnavailableError):
        await closed.acquire("k", Limits(rpm=1), 1)
    await opened.close()
    await closed.close()


async def test_migrations_upgrade_an_old_database_without_losing_keys(database_url: str) -> None:
    import sqlalchemy as sa

    store = KeyStore(database_url)
    async with store.engine.begin() as conn:  # a database at schema version 1
        await conn.run_sync(lambda c: schema_version.create(c, checkfirst=True))
        await MIGRATIONS[0](conn)
        await conn.execute(schema_version.insert().values(version=1, applied_at=0.0))
        await conn.execute(api_keys.insert().values(id="k1", digest="d" * 64, prefix="p", name="old",
                                                    owner="", admin=False, revoked=False,
                                                    created_at=1.0))
    assert await store.migrate() == len(MIGRATIONS)
    assert await store.migrate() == len(MIGRATIONS)  # idempotent
    assert (await store.get("k1")).name == "old"  # type: ignore[union-attr]
    await store.add_usage([("k1", "2026-01-01", 1, 2, 3)])
    assert (await store.usage("k1"))[0]["completion_tokens"] == 3
    async with store.engine.connect() as conn:
        versions = (await conn.execute(sa.select(schema_version.c.version))).scalars().all()
    assert sorted(versions) == list(range(1, len(MIGRATIONS) + 1))
    await store.close()


def test_keys_are_stored_hashed(registry: Registry, sqlite_url: str, tmp_path: Path) -> None:
    with _client(registry, sqlite_url) as c:
        created = _new_key(c)
    raw = (tmp_path / "keys.db").read_bytes()
    assert created["key"].encode() not in raw


def test_stream_end_releases_the_concurrency_slot(registry: Registry, sqlite_url: str) -> None:
    with _client(registry, sqlite_url) as c:
        created = _new_key(c, max_concurrent=1)
        for _ in range(3):  # each stream ends, so the next one gets the slot
            r = c.post("/v1/chat/completions", json={**CHAT, "stream": True},
                       headers=_auth(created["key"]))
            assert r.status_code == 200


def test_backend_error_releases_the_concurrency_slot(registry: Registry, sqlite_url: str) -> None:
    backend = FakeBackend(ready={"chat_a"}, fail_before=ServiceUnavailableError("down"))
    with _client(registry, sqlite_url, backend=backend) as c:
        created = _new_key(c, max_concurrent=1)
        for stream in (False, True, False):
            r = c.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                       headers=_auth(created["key"]))
            assert r.status_code == 503


