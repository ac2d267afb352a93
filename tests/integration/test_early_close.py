"""A client that leaves early pays for what was generated, its Triton call is cancelled, and its
concurrency slot comes back: streaming and non-streaming, on a real uvicorn server."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.keys_support import ADMIN, GatewayServer, auth

SLOW = {"model": "slow", "messages": [{"role": "user", "content": "go"}], "max_tokens": 400}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    work = tmp_path_factory.mktemp("early-close")
    gw = GatewayServer(work, {"CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'keys.db'}"})
    gw.start()
    yield gw
    gw.stop()


def _key(server: GatewayServer, **limits: Any) -> dict[str, Any]:
    r = httpx.post(server.base_url + "/admin/keys", json={"name": "t", **limits},
                   headers=auth(ADMIN))
    assert r.status_code == 201
    return r.json()


def _usage(server: GatewayServer, key_id: str) -> dict[str, int]:
    rows = httpx.get(server.base_url + "/admin/usage", params={"key_id": key_id},
                     headers=auth(ADMIN)).json()["data"]
    return {k: sum(int(r[k]) for r in rows) for k in ("requests", "completion_tokens")}


def _post_raw(server: GatewayServer, key: str, body: dict[str, Any]) -> socket.socket:
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                 b"Content-Type: application/json\r\nAuthorization: Bearer " + key.encode()
                 + b"\r\nContent-Length: " + str(len(data)).encode() + b"\r\n\r\n" + data)
    return sock


def _wait_usage(server: GatewayServer, key_id: str, requests: int) -> dict[str, int]:
    deadline = time.monotonic() + 10
    usage = _usage(server, key_id)
    while usage["requests"] < requests and time.monotonic() < deadline:
        time.sleep(0.1)
        usage = _usage(server, key_id)
    return usage


def test_a_stream_closed_early_is_billed_for_what_was_generated(server: GatewayServer) -> None:
    key = _key(server, max_concurrent=1)
    with httpx.Client(base_url=server.base_url, timeout=30) as client, client.stream(
            "POST", "/v1/chat/completions", json={**SLOW, "stream": True},
            headers=auth(key["key"])) as response:
        chunks = 0
        for line in response.iter_lines():
            if line.startswith("data: {"):
                chunks += 1
            if chunks == 31:  # the role chunk, then 30 tokens
                break
    usage = _wait_usage(server, key["id"], 1)
    assert 30 <= usage["completion_tokens"] < 60, usage
    # The slot came back: a max_concurrent=1 key is served right away.
    again = httpx.post(server.base_url + "/v1/chat/completions",
                       json={"model": "chat-a", "messages": SLOW["messages"]},
                       headers=auth(key["key"]), timeout=10)
    assert again.status_code == 200


def test_a_non_streaming_request_whose_client_left_is_cancelled_and_billed(
        server: GatewayServer) -> None:
    key = _key(server, max_concurrent=1)
    sock = _post_raw(server, key["key"], SLOW)
    time.sleep(1.0)  # about 20 tokens at 50 ms each
    sock.close()
    usage = _wait_usage(server, key["id"], 1)
    # Cancelled about 1 s in: billed for what it generated, not 0 and not all 400.
    assert 5 <= usage["completion_tokens"] <= 200, usage
    started = time.monotonic()
    again = httpx.post(server.base_url + "/v1/chat/completions",
                       json={"model": "chat-a", "messages": SLOW["messages"]},
                       headers=auth(key["key"]), timeout=10)
    assert again.status_code == 200, again.text  # the slot is free: generation stopped
    assert time.monotonic() - started < 5


@pytest.mark.redis
def test_the_slot_comes_back_at_once_every_time_with_redis(tmp_path_factory: pytest.TempPathFactory,
                                                           redis_prefix: str) -> None:
    """Release after a disconnect does not wait for garbage collection or a lease to lapse:
    twenty disconnects in a row, each slot free again within a second."""
    from tests.integration.conftest import REDIS_URL

    work = tmp_path_factory.mktemp("early-close-redis")
    gw = GatewayServer(work, {"CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'keys.db'}",
                              "CHUNGUS_REDIS_URL": REDIS_URL, "CHUNGUS_REDIS_PREFIX": redis_prefix})
    gw.start()
    try:
        key = _key(gw, max_concurrent=1)
        quick = {"model": "chat-a", "messages": SLOW["messages"]}
        for attempt in range(20):
            with httpx.Client(base_url=gw.base_url, timeout=30) as client, client.stream(
                    "POST", "/v1/chat/completions", json={**SLOW, "stream": True},
                    headers=auth(key["key"])) as response:
                assert response.status_code == 200
                next(response.iter_lines())
            deadline = time.monotonic() + 1.0
            status = 0
            while time.monotonic() < deadline:
                status = httpx.post(gw.base_url + "/v1/chat/completions", json=quick,
                                    headers=auth(key["key"]), timeout=10).status_code
                if status == 200:
                    break
                time.sleep(0.05)
            assert status == 200, f"slot still taken 1 s after disconnect #{attempt}"
    finally:
        gw.stop()
