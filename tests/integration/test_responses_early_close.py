"""/v1/responses on a real uvicorn server over the fake backend: the SDK over real sockets, and a
client that leaves early pays for what was generated and gets its concurrency slot back."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.integration.keys_support import ADMIN, GatewayServer, auth
from tests.spec import validate

SLOW = {"model": "slow", "input": "go", "max_output_tokens": 400}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    work = tmp_path_factory.mktemp("responses-early-close")
    gw = GatewayServer(work, {"CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'keys.db'}",
                              "CHUNGUS_RESPONSES_STORE": "true"})
    gw.start()
    yield gw
    gw.stop()


def _key(server: GatewayServer, **limits: Any) -> dict[str, Any]:
    r = httpx.post(server.base_url + "/admin/keys", json={"name": "t", **limits},
                   headers=auth(ADMIN))
    assert r.status_code == 201
    return dict(r.json())


def _usage(server: GatewayServer, key_id: str, requests: int) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while True:
        rows = httpx.get(server.base_url + "/admin/usage", params={"key_id": key_id},
                         headers=auth(ADMIN)).json()["data"]
        usage = {k: sum(int(r[k]) for r in rows) for k in ("requests", "completion_tokens")}
        if usage["requests"] >= requests or time.monotonic() > deadline:
            return usage
        time.sleep(0.1)


def test_sdk_over_real_sockets(server: GatewayServer) -> None:
    key = _key(server)
    sdk = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key["key"], max_retries=0)
    events = list(sdk.responses.create(model="chat-a", input="hi", stream=True))
    assert events[-1].type == "response.completed"
    for event in events:
        validate("ResponseStreamEvent", event.model_dump(mode="json", exclude_unset=True))
    stored = sdk.responses.retrieve(events[-1].response.id)  # type: ignore[union-attr]
    assert stored.output_text == "Hello world!"


def test_a_stream_closed_early_is_billed_for_what_was_generated(server: GatewayServer) -> None:
    key = _key(server, max_concurrent=1)
    with httpx.Client(base_url=server.base_url, timeout=30) as client, client.stream(
            "POST", "/v1/responses", json={**SLOW, "stream": True},
            headers=auth(key["key"])) as response:
        deltas = 0
        for line in response.iter_lines():
            if line == "event: response.output_text.delta":
                deltas += 1
            if deltas == 30:
                break
    usage = _usage(server, key["id"], 1)
    assert 30 <= usage["completion_tokens"] < 60, usage
    again = httpx.post(server.base_url + "/v1/responses", json={"model": "chat-a", "input": "x"},
                       headers=auth(key["key"]), timeout=10)
    assert again.status_code == 200, "the slot came back"


def test_a_non_streaming_request_whose_client_left_is_cancelled_and_billed(
        server: GatewayServer) -> None:
    key = _key(server, max_concurrent=1)
    data = json.dumps(SLOW).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"POST /v1/responses HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + key["key"].encode() + b"\r\nContent-Length: "
                 + str(len(data)).encode() + b"\r\n\r\n" + data)
    time.sleep(1.0)  # about 20 tokens at 50 ms each
    sock.close()
    usage = _usage(server, key["id"], 1)
    assert 5 <= usage["completion_tokens"] < 100, usage
    again = httpx.post(server.base_url + "/v1/responses", json={"model": "chat-a", "input": "x"},
                       headers=auth(key["key"]), timeout=10)
    assert again.status_code == 200, "the slot came back"
