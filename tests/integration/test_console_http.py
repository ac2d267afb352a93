"""The console over HTTP (fake backend, real SQLite and PostgreSQL): sign-in exchanges a key for a
session cookie, CSRF on every change, admin and user scopes, the same-origin chat proxy, usage
series and CSV, revocation and expiry ending sessions."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from gateway.backends.fake import FakeBackend
from gateway.errors import RateLimitError
from gateway.registry import Registry
from tests.integration.keys_support import ADMIN, CHAT, auth, new_key, security_client

INVALID = "Incorrect API key provided. You can find your API key in your CHUNGUS admin."


@pytest.fixture()
def client(chat_registry: Registry, database_url: str) -> Iterator[TestClient[Any]]:
    with security_client(chat_registry, database_url) as c:
        yield c


def sign_in(client: TestClient[Any], key: str) -> str:
    """Signs in; returns the page's CSRF token."""
    r = client.post("/console/login", data={"key": key}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get(r.headers["location"])
    assert page.status_code == 200
    marker = '<meta name="csrf-token" content="'
    return page.text.split(marker, 1)[1].split('"', 1)[0]


def test_sign_in_sets_a_strict_http_only_cookie_and_never_echoes_the_key(client: TestClient[Any]) -> None:
    r = client.post("/console/login", data={"key": ADMIN}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/keys"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("chungus_console=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Max-Age=28800" in cookie and "Secure" not in cookie  # plain http here
    assert ADMIN not in cookie and ADMIN not in r.text
    page = client.get("/console/keys")
    assert page.status_code == 200 and ADMIN not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"


def test_a_wrong_key_shows_the_api_message_and_opens_no_session(client: TestClient[Any]) -> None:
    r = client.post("/console/login", data={"key": "sk-chungus-unknownunknownunknown12"},
                    follow_redirects=False)
    assert r.status_code == 401 and INVALID in r.text
    assert "set-cookie" not in r.headers
    assert client.get("/console/keys", follow_redirects=False).headers["location"] == "/console/login"
    assert client.get("/console/api/keys").status_code == 401


def test_every_change_needs_the_csrf_token_and_this_origin(client: TestClient[Any]) -> None:
    token = sign_in(client, ADMIN)
    body = {"name": "ci"}
    r = client.post("/console/api/keys", json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_failed"
    r = client.post("/console/api/keys", json=body, headers={"x-csrf-token": token + "x"})
    assert r.status_code == 403
    r = client.post("/console/api/keys", json=body,
                    headers={"x-csrf-token": token, "origin": "http://evil.example"})
    assert r.status_code == 403
    assert client.get("/console/api/keys").json()["data"] == []  # nothing was created
    r = client.post("/console/api/keys", json=body, headers={"x-csrf-token": token})
    assert r.status_code == 201 and r.json()["key"].startswith("sk-chungus-")
    assert client.post("/console/logout", data={"csrf": "wrong"}).status_code == 403


def test_keys_created_edited_and_revoked_through_the_console(client: TestClient[Any]) -> None:
    token = {"x-csrf-token": sign_in(client, ADMIN)}
    created = client.post("/console/api/keys", headers=token, json={
        "name": "team", "owner": "ana", "rpm": 5, "allowed_models": ["chat-a"],
        "expires_in_s": 3600}).json()
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth(created["key"])).status_code == 200
    r = client.patch(f"/console/api/keys/{created['id']}", headers=token,
                     json={"tpm": 1000, "allowed_models": ["chat-b"]})
    assert r.status_code == 200 and r.json()["tpm"] == 1000 and r.json()["rpm"] == 5
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth(created["key"])).status_code == 403
    page = client.get("/console/keys").text
    assert created["prefix"] in page and "ana" in page and "5 / 1000 / ∞" in page
    r = client.post(f"/console/api/keys/{created['id']}/revoke", headers=token)
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert client.get("/v1/models", headers=auth(created["key"])).status_code == 401
    assert client.patch("/console/api/keys/nope", headers=token, json={}).status_code == 404


def test_models_page_and_activation(client: TestClient[Any]) -> None:
    token = {"x-csrf-token": sign_in(client, ADMIN)}
    rows = {m["id"]: m for m in client.get("/console/api/models").json()["data"]}
    assert rows["chat-a"]["ready"] is True and rows["chat-a"]["contract"] == "bls"
    assert rows["chat-a"]["capabilities"][:2] == ["chat", "streaming"]
    assert client.post("/console/api/models/chat-a/deactivate", headers=token).status_code == 200
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth(ADMIN)).status_code == 404
    assert "inactive" in client.get("/console/models").text
    assert client.post("/console/api/models/chat-a/activate", headers=token).status_code == 200
    assert client.post("/v1/chat/completions", json=CHAT, headers=auth(ADMIN)).status_code == 200
    assert client.post("/console/api/models/nope/activate", headers=token).status_code == 404


def test_playground_proxy_streams_with_the_session_and_counts_usage(client: TestClient[Any]) -> None:
    user = new_key(client, name="dev")
    token = {"x-csrf-token": sign_in(client, user["key"])}
    with client.stream("POST", "/console/api/chat/completions", headers=token,
                       json={**CHAT, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    assert '"content":"Hello"' in text and text.endswith("data: [DONE]\n\n")
    series = client.get("/console/api/usage/series?range=hour").json()
    assert series["key_id"] == user["id"] and series["width_s"] == 60 and len(series["data"]) == 60
    assert series["data"][-1]["requests"] == 1 and series["data"][-1]["completion_tokens"] == 3
    r = client.post("/console/api/chat/completions", json={**CHAT, "model": "nope"}, headers=token)
    assert r.status_code == 404 and r.json()["error"]["param"] == "model"


def test_a_user_key_sees_only_its_own_usage_and_no_admin_pages(client: TestClient[Any]) -> None:
    user = new_key(client, name="dev")
    sign_in(client, user["key"])
    assert client.get("/console/keys", follow_redirects=False).headers["location"] == "/console/usage"
    assert client.get("/console/api/keys").status_code == 403
    assert client.get("/console/api/live").status_code == 403
    r = client.get("/console/api/usage/series?key_id=other")
    assert r.status_code == 403 and r.json()["error"]["param"] == "key_id"
    assert client.get("/console/playground").status_code == 200


def test_revoking_the_key_or_expiry_ends_the_session(chat_registry: Registry, database_url: str) -> None:
    with security_client(chat_registry, database_url, console_session_ttl_s=1.0) as c:
        user = new_key(c)
        sign_in(c, user["key"])
        assert c.get("/console/api/usage/series").status_code == 200
        c.post(f"/admin/keys/{user['id']}/revoke", headers=auth(ADMIN))
        assert c.get("/console/api/usage/series").status_code == 401
        sign_in(c, ADMIN)
        assert c.get("/console/api/keys").status_code == 200
        time.sleep(1.1)
        r = c.get("/console/api/keys")
        assert r.status_code == 401 and r.json()["error"]["code"] == "console_session_required"


def test_sign_out_deletes_the_session(client: TestClient[Any]) -> None:
    token = sign_in(client, ADMIN)
    cookie = client.cookies.get("chungus_console")
    r = client.post("/console/logout", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and "Max-Age=0" in r.headers["set-cookie"]
    client.cookies.set("chungus_console", cookie or "", path="/console")
    assert client.get("/console/api/keys").status_code == 401


def test_series_and_csv_for_admins_and_for_each_key(chat_registry: Registry, database_url: str) -> None:
    backend = FakeBackend(ready={"chat_a", "chat_b"})
    with security_client(chat_registry, database_url, backend=backend) as c:
        a, b = new_key(c, rpm=1), new_key(c)
        assert c.post("/v1/chat/completions", json=CHAT, headers=auth(a["key"])).status_code == 200
        assert c.post("/v1/chat/completions", json=CHAT, headers=auth(a["key"])).status_code == 429
        backend.fail_before = RateLimitError("busy")  # a failure after admission is an error
        c.post("/v1/chat/completions", json={**CHAT, "model": "chat-b"}, headers=auth(b["key"]))
        backend.fail_before = None
        day = c.get(f"/admin/usage/series?range=day&key_id={a['id']}", headers=auth(ADMIN)).json()
        assert len(day["data"]) == 24 and day["width_s"] == 3600
        last = day["data"][-1]
        assert (last["requests"], last["rate_limited"], last["errors"]) == (1, 1, 0)
        month = c.get("/admin/usage/series?range=30d&model=chat-b", headers=auth(ADMIN)).json()
        assert len(month["data"]) == 30 and month["data"][-1]["errors"] == 1
        assert month["data"][-1]["requests"] == 1
        own = c.get("/me/usage/series?range=hour", headers=auth(b["key"])).json()
        assert own["key_id"] == b["id"] and sum(p["errors"] for p in own["data"]) == 1
        assert c.get(f"/me/usage/series?key_id={a['id']}", headers=auth(b["key"])).status_code == 403
        r = c.get("/admin/usage/series?range=week", headers=auth(ADMIN))
        assert r.status_code == 400 and r.json()["error"]["param"] == "range"
        assert c.get("/admin/usage/series", headers=auth(b["key"])).status_code == 403
        r = c.get("/admin/usage/export?range=hour", headers=auth(ADMIN))
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        mine = {(row["key_id"], row["model"]): row for row in rows}
        assert mine[(a["id"], "chat-a")]["requests"] == "1"
        assert mine[(a["id"], "chat-a")]["rate_limited"] == "1"
        assert mine[(b["id"], "chat-b")]["errors"] == "1" and mine[(b["id"], "chat-b")]["width_s"] == "60"
        own_csv = c.get("/me/usage/export?range=hour", headers=auth(b["key"])).text
        assert a["id"] not in own_csv and b["id"] in own_csv


def test_static_assets_are_served_locally(client: TestClient[Any]) -> None:
    for path in ("/console/static/console.js", "/console/static/console.css",
                 "/console/static/vendor/uplot/uPlot.iife.min.js"):
        r = client.get(path)
        assert r.status_code == 200 and len(r.content) > 500
    login = client.get("/console/login").text
    assert "http://" not in login.replace('xmlns="http://', "") and "https://" not in login


def test_buckets_add_up_and_are_purged_on_both_databases(database_url: str) -> None:
    import asyncio

    from gateway.auth.store import HOUR, MINUTE, KeyStore
    from gateway.auth.usage import UsageRecorder

    async def run() -> None:
        store = KeyStore(database_url)
        await store.migrate()
        try:
            now = int(time.time())
            hour = now - now % HOUR
            await store.add_buckets([(MINUTE, now - 3 * 86400, "k", "m", (1, 1, 1, 0, 0)),
                                     (HOUR, hour - 100 * 86400, "k", "m", (1, 0, 0, 0, 0)),
                                     (HOUR, hour, "k", "m", (2, 5, 6, 0, 1))])
            await store.add_buckets([(HOUR, hour, "k", "m", (1, 1, 1, 1, 0))])
            await UsageRecorder(store).purge()
            assert await store.buckets(MINUTE, 0) == []
            assert await store.buckets(HOUR, 0, key_id="k", model="m") == [
                {"start": hour, "requests": 3, "prompt_tokens": 6, "completion_tokens": 7,
                 "errors": 1, "rate_limited": 1}]
        finally:
            await store.close()

    asyncio.run(run())
