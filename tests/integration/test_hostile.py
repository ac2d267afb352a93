"""A hostile corpus against a real uvicorn server: each body gets a clear OpenAI-shaped 4xx, fast,
and the event loop stays free (``/health/live`` answers quickly meanwhile)."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.keys_support import ADMIN, GatewayServer, auth

MSG = [{"role": "user", "content": "hi"}]


def _chat(**fields: Any) -> bytes:
    return json.dumps({"model": "chat-a", "messages": MSG, **fields}).encode()


# (name, body bytes, content type, status, code)
CORPUS: list[tuple[str, bytes, str, int, str | None]] = [
    ("19 MB string", json.dumps({"model": "chat-a", "messages": [
        {"role": "user", "content": "x" * (19 * 1024 * 1024)}]}).encode(),
     "application/json", 400, "context_length_exceeded"),
    ("600k empty messages", b'{"model":"chat-a","messages":['
     + b",".join([b'{"role":"user","content":""}'] * 600_000) + b"]}",
     "application/json", 400, "context_length_exceeded"),
    ("10k messages", json.dumps({"model": "chat-a",
                                 "messages": [{"role": "user", "content": "a"}] * 10_000}).encode(),
     "application/json", 400, "context_length_exceeded"),
    ("1 MB string", _chat(messages=[{"role": "user", "content": "y" * 1_000_000}]),
     "application/json", 400, "context_length_exceeded"),
    ("deep JSON", b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"tools":[{"type":'
     b'"function","function":{"name":"f","parameters":{"a":' + b"[" * 100_000 + b"]" * 100_000
     + b"}}}]}", "application/json", 400, "invalid_json"),
    ("deep object", b'{"model":"chat-a","messages":[],"response_format":'
     + b'{"a":' * 5_000 + b"1" + b"}" * 5_000 + b"}", "application/json", 400, "invalid_json"),
    ("invalid UTF-8", b'{"model":"chat-a","messages":[{"role":"user","content":"\xff\xfe"}]}',
     "application/json", 400, "invalid_json"),
    ("lone surrogate", b'{"model":"chat-a","messages":[{"role":"user","content":"\\ud800"}]}',
     "application/json", 400, "invalid_json"),
    ("NaN", b'{"model":"chat-a","messages":[],"temperature":NaN}', "application/json", 400,
     "invalid_json"),
    ("Infinity", b'{"model":"chat-a","messages":[],"temperature":Infinity}', "application/json",
     400, "invalid_json"),
    ("huge exponent", b'{"model":"chat-a","messages":[{"role":"user","content":"hi"}],'
     b'"temperature":1e999}', "application/json", 400, None),
    ("not JSON", b"model=chat-a", "application/json", 400, "invalid_json"),
    ("form content type", _chat(), "application/x-www-form-urlencoded", 415,
     "unsupported_media_type"),
    ("empty body", b"", "application/json", 400, "invalid_json"),
    ("array body", b"[1,2,3]", "application/json", 400, None),
    ("top_k 2^63", _chat(top_k=2**63), "application/json", 400, "invalid_value"),
    ("seed 2^70", _chat(seed=2**70), "application/json", 400, "invalid_value"),
    ("stop of 1 MB", _chat(stop="s" * 1_000_000), "application/json", 400, "invalid_value"),
]

WRONG_TYPES = {"model": 1, "messages": "hi", "stream": "yes", "temperature": "hot", "top_p": [],
               "max_tokens": "many", "max_completion_tokens": 1.5, "stop": 5, "seed": "x",
               "presence_penalty": {}, "frequency_penalty": "f", "n": "2", "top_k": 1.5,
               "repetition_penalty": "r", "min_tokens": "m", "stream_options": 3, "logprobs": 2,
               "user": 5}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    work = tmp_path_factory.mktemp("hostile")
    gw = GatewayServer(work, {"CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'keys.db'}",
                              "CHUNGUS_BODY_TIMEOUT_S": "2"})
    gw.start()
    yield gw
    gw.stop()


class LivenessProbe:
    """Polls /health/live from a thread; records each answer's latency."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                assert client.get("/health/live").status_code == 200
                self.latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    def __enter__(self) -> LivenessProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


def _error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"]
    return dict(body["error"])


def test_every_hostile_body_gets_a_clear_4xx_fast_and_the_loop_stays_free(
        server: GatewayServer) -> None:
    headers = auth(ADMIN)
    timings: dict[str, float] = {}
    with LivenessProbe(server.base_url) as probe, httpx.Client(base_url=server.base_url,
                                                               timeout=30) as client:
        for name, body, media, status, code in CORPUS:
            started = time.monotonic()
            r = client.post("/v1/chat/completions", content=body,
                            headers={**headers, "Content-Type": media})
            timings[name] = time.monotonic() - started
            assert r.status_code == status, (name, r.status_code, r.text[:300])
            assert _error(r)["code"] == code, (name, r.text[:300])
        for field, value in WRONG_TYPES.items():
            body = {"model": "chat-a", "messages": MSG, field: value}
            r = client.post("/v1/chat/completions", json=body, headers=headers)
            assert r.status_code == 400, (field, r.text)
            assert _error(r)["param"] == field, (field, r.text)
    slowest = max(timings, key=lambda k: timings[k])
    print(f"\nslowest refusal: {slowest} {timings[slowest] * 1000:.0f} ms; /health/live p50 "
          f"{statistics.median(probe.latencies) * 1000:.1f} ms, max {max(probe.latencies) * 1000:.1f} ms"
          f" over {len(probe.latencies)} probes")
    assert timings[slowest] < 3, timings
    assert statistics.median(probe.latencies) < 0.1, probe.latencies
    assert max(probe.latencies) < 1.0, probe.latencies


def test_duplicate_keys_are_no_error_the_last_one_wins(server: GatewayServer) -> None:
    body = b'{"model":"nope","model":"chat-a","messages":[{"role":"user","content":"hi"}]}'
    r = httpx.post(server.base_url + "/v1/chat/completions", content=body,
                   headers={**auth(ADMIN), "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["model"] == "chat-a"


def test_a_body_that_never_finishes_gets_408_when_the_body_time_runs_out(
        server: GatewayServer) -> None:
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nAuthorization: Bearer " + ADMIN.encode() + b"\r\n\r\n")
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + b"5\r\n{\"mod\r\n")  # then nothing more
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    took = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b'"code":"request_timeout"' in reply
    assert 1.5 < took < 6
