"""Keys over HTTP: every 401, revocation and expiry (on this and another replica), 403 by model,
admin scope, key-store outages, usage and activation; real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.backends.fake import FakeBackend
from gateway.registry import Registry
from gateway.settings import Settings
from tests.integration.conftest import _pg
from tests.integration.keys_support import ADMIN, CHAT, auth, new_key, security_client

INVALID = "Incorrect API key provided. You can find your API key in your CHUNGUS admin."
MISSING = "You didn't provide an API key. Send it as 'Authorization: Bearer sk-chungus-...'."
ROUTES = (("POST", "/v1/chat/completions"), ("POST", "/api/v1/chat/completions"),
          ("GET", "/v1/models"), ("GET", "/v1/models/chat-a"), ("GET", "/admin/keys"))


@pytest.fixture()
def client(chat_registry: Registry, database_url: str) -> Iterator[TestClient]:
    with security_client(chat_registry, database_url) as c:
        yield c


def _assert_401(client: TestClient, headers: dict[str, str], message: str) -> None:
    for method, path in ROUTES:
        r = client.request(method, path, json=CHAT, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.json() == {"error": {"message": message, "type": "invalid_request_error",
                                      "param": None, "code": "invalid_api_key"}}


@pytest.mark.parametrize(("header", "message"), [
    (None, MISSING), ("", MISSING), ("Bearer", MISSING), ("Basic c2stY2h1bmd1cy14Cg==", MISSING),
    ("Bearer not-a-key", INVALID), ("Bearer sk-chungus-short", INVALID),
    ("Bearer sk-chungus-" + "x" * 300, INVALID), ("Bearer sk-chungus-unknownunknownunknown12", INVALID),
    (f"Bearer {ADMIN}x", INVALID),
])
def test_missing_malformed_and_unknown_keys_get_401(client: TestClient, header: str | None,
                                                    message: str) -> None:
    _assert_401(client, {"Authorization": header} if header is not None else {}, message)


def test_revoked_and_expired_keys_get_401(client: TestClient) -> None:
    revoked, expiring = new_key(client), new_key(client, expires_in_s=0.5)
    for created in (revoked, expiring):
        assert client.get("/v1/models", headers=auth(created["key"])).status_code == 200
    r = client.post(f"/admin/keys/{revoked['id']}/revoke", headers=auth(ADMIN))
    assert r.status_code == 200 and r.json()["revoked"] is True
    _assert_401(client, auth(revoked["key"]), INVALID)  # at once on this replica
    time.sleep(0.6)
    _assert_401(client, auth(expiring["key"]), "This API key has expired.")


def test_revocation_reaches_another_replica_within_the_cache_ttl(chat_registry: Registry,
                                                                 database_url: str) -> None:
    with security_client(chat_registry, database_url) as a, \
            security_client(chat_registry, database_url, key_cache_ttl_s=1.0) as b:
        created = new_key(a)
        assert b.get("/v1/models", headers=auth(created["key"])).status_code == 200
        assert a.post(f"/admin/keys/{created['id']}/revoke", headers=auth(ADMIN)).status_code == 200
        revoked_at = time.monotonic()
        while b.get("/v1/models", headers=auth(created["key"])).status_code == 200:
            assert time.monotonic() - revoked_at < 1.5, "replica b still accepts a revoked key"
            time.sleep(0.05)


def test_the_key_is_shown_once_and_stored_only_as_a_digest(client: TestClient,
                                                            database_url: str) -> None:
    created = new_key(client, name="ci", owner="team-a")
    assert created["key"].startswith("sk-chungus-") and created["prefix"] == created["key"][:15] + "..."
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth(created["key"])).status_code == 200
    listed = client.get("/admin/keys", headers=auth(ADMIN))
    assert [k["name"] for k in listed.json()["data"]] == ["ci"]
    one = client.get(f"/admin/keys/{created['id']}", headers=auth(ADMIN)).json()
    for text in (listed.text, str(one)):
        assert created["key"] not in text and "digest" not in text
    assert created["key"] not in asyncio.run(_dump_keys_table(database_url))


async def _dump_keys_table(url: str) -> str:
    from gateway.auth.store import KeyStore, api_keys

    store = KeyStore(url)
    try:
        async with store.engine.connect() as conn:
            rows = (await conn.execute(api_keys.select())).all()
        assert rows
        return repr(rows)
    finally:
        await store.close()


def test_updated_limits_and_models_apply(client: TestClient) -> None:
    created = new_key(client, allowed_models=["chat-b"])
    r = client.post("/v1/chat/completions", json=CHAT, headers=auth(created["key"]))
    assert r.status_code == 403
    assert r.json() == {"error": {"message": "This API key may not use model 'chat-a'",
                                  "type": "permission_error", "param": "model",
                                  "code": "model_not_allowed"}}
    ok = client.post("/v1/chat/completions", json={**CHAT, "model": "chat-b"},
                     headers=auth(created["key"]))
    assert ok.status_code == 200 and "x-ratelimit-limit-requests" not in ok.headers
    r = client.patch(f"/admin/keys/{created['id']}", json={"allowed_models": None, "rpm": 5},
                     headers=auth(ADMIN))
    assert r.status_code == 200 and r.json()["rpm"] == 5 and r.json()["allowed_models"] is None
    ok = client.post("/v1/chat/completions", json=CHAT, headers=auth(created["key"]))
    assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-requests"] == "5"


def test_admin_routes_need_an_admin_key(client: TestClient) -> None:
    user, admin = new_key(client), new_key(client, admin=True)
    r = client.get("/admin/keys", headers=auth(user["key"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required"
    assert client.get("/admin/keys", headers=auth(admin["key"])).status_code == 200
    assert client.get("/admin/keys/nope", headers=auth(ADMIN)).json()["error"]["code"] == "key_not_found"
    assert client.post("/admin/keys/nope/revoke", headers=auth(ADMIN)).status_code == 404
    for bad in ({"rpm": 0}, {"tpm": -1}, {"bogus": 1}, {"admin": "yes"}):
        assert client.post("/admin/keys", json=bad, headers=auth(ADMIN)).status_code == 400


def test_a_malformed_bootstrap_admin_key_stops_start_up(chat_registry: Registry,
                                                        sqlite_url: str) -> None:
    with pytest.raises(ValueError, match="CHUNGUS_ADMIN_KEY"):
        create_app(Settings(admin_key="changeme", database_url=sqlite_url), FakeBackend(),
                   registry=chat_registry)


def test_key_store_outage_serves_cached_keys_and_503s_new_ones(chat_registry: Registry,
                                                                pg_url: str) -> None:
    with security_client(chat_registry, pg_url, key_cache_ttl_s=0.2) as c:
        known = new_key(c)
        assert c.get("/v1/models", headers=auth(known["key"])).status_code == 200
        asyncio.run(_pg(f"DROP DATABASE {pg_url.rsplit('/', 1)[1]} WITH (FORCE)"))
        time.sleep(0.3)  # the cache entry is due: the lookup fails, the stale entry serves
        assert c.get("/v1/models", headers=auth(known["key"])).status_code == 200
        r = c.post("/v1/chat/completions", json=CHAT, headers=auth(known["key"]))
        assert r.status_code == 200
        r = c.get("/v1/models", headers=auth("sk-chungus-neverseenneverseen00"))
        assert r.status_code == 503 and r.json()["error"]["code"] == "key_store_unavailable"


def test_usage_is_accounted_per_key(client: TestClient) -> None:
    created = new_key(client)
    for stream in (False, True, False):
        r = client.post("/v1/chat/completions", json={**CHAT, "stream": stream},
                        headers=auth(created["key"]))
        assert r.status_code == 200
    r = client.get(f"/admin/usage?key_id={created['id']}", headers=auth(ADMIN))
    rows = r.json()["data"]
    assert [(u["key_id"], u["requests"], u["prompt_tokens"], u["completion_tokens"]) for u in rows] \
        == [(created["id"], 3, 6, 9)]
    assert rows[0]["day"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert client.get(f"/admin/keys/{created['id']}", headers=auth(ADMIN)).json()["last_used_at"]


def test_model_activation(client: TestClient) -> None:
    def listed() -> set[str]:
        return {m["id"] for m in client.get("/v1/models", headers=auth(ADMIN)).json()["data"]}

    assert listed() == {"chat-a", "chat-b"}
    r = client.post("/admin/models/chat-a/deactivate", headers=auth(ADMIN))
    assert r.json() == {"id": "chat-a", "active": False}
    assert listed() == {"chat-b"}
    r = client.post("/v1/chat/completions", json=CHAT, headers=auth(ADMIN))
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    models = client.get("/admin/models", headers=auth(ADMIN)).json()["data"]
    assert {(m["id"], m["active"], m["ready"]) for m in models} == {("chat-a", False, True),
                                                                    ("chat-b", True, True)}
    client.post("/admin/models/chat-a/activate", headers=auth(ADMIN))
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth(ADMIN)).status_code == 200
    assert client.post("/admin/models/nope/activate", headers=auth(ADMIN)).status_code == 404
    assert client.post("/admin/models/chat-a/activate").status_code == 401


def test_a_client_that_keeps_failing_gets_429_but_known_keys_still_work(
        chat_registry: Registry, sqlite_url: str) -> None:
    from gateway.auth.guard import FAILURE_BURST

    with security_client(chat_registry, sqlite_url) as c:
        good = auth(new_key(c)["key"])
        assert c.post("/v1/chat/completions", json=CHAT, headers=good).status_code == 200
        statuses = [c.post("/v1/chat/completions", json=CHAT,
                           headers=auth(f"sk-chungus-unknown-{i:020d}")).status_code
                    for i in range(FAILURE_BURST + 5)]
        assert statuses[:FAILURE_BURST] == [401] * FAILURE_BURST
        assert statuses[FAILURE_BURST:] == [429] * 5
        refused = c.post("/v1/chat/completions", json=CHAT, headers=auth("sk-chungus-unknown-x" * 2))
        assert refused.json()["error"]["code"] == "too_many_auth_failures"
        assert int(refused.headers["retry-after"]) >= 1
        # A key this replica knows costs no lookup, so it is never refused for others' failures.
        assert c.post("/v1/chat/completions", json=CHAT, headers=good).status_code == 200


async def test_unknown_keys_are_cached_apart_and_never_flush_known_ones(sqlite_url: str) -> None:
    from gateway.auth import guard as guard_module
    from gateway.auth.guard import KeyGuard
    from gateway.auth.keys import digest, display_prefix, generate_key
    from gateway.auth.store import KeyRecord, KeyStore, new_key_id
    from gateway.limits import MemoryLimiter

    store = KeyStore(sqlite_url)
    await store.migrate()
    key = generate_key()
    await store.create_key(KeyRecord(id=new_key_id(), digest=digest(key),
                                     prefix=display_prefix(key)))
    guard = KeyGuard(store, MemoryLimiter(), admin_key=None, cache_ttl_s=60)
    await guard.authenticate(f"Bearer {key}")
    lookups = 0
    real = store.by_digest

    async def counted(d: str) -> KeyRecord | None:
        nonlocal lookups
        lookups += 1
        return await real(d)

    store.by_digest = counted  # type: ignore[method-assign]  # count database queries
    fakes = [f"Bearer sk-chungus-fake{i:024d}" for i in range(guard_module._MISS_MAX + 50)]
    for header in fakes:
        with pytest.raises(Exception, match="Incorrect API key"):
            await guard.authenticate(header)
    assert lookups == len(fakes)
    assert len(guard._misses) == guard_module._MISS_MAX
    with pytest.raises(Exception, match="Incorrect API key"):  # a repeated fake: cached miss
        await guard.authenticate(fakes[-1])
    assert lookups == len(fakes)
    await guard.authenticate(f"Bearer {key}")  # the real key is still cached: no query
    assert lookups == len(fakes)
    await store.close()
