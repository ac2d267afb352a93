"""The drain gate: once draining, new requests get 503 ``shutting_down`` and a closed connection;
probes still answer; nothing changes while serving."""

from __future__ import annotations

import json
from typing import Any

from gateway.health.drain import DrainGate
from gateway.health.state import Lifecycle


async def _call(gate: DrainGate, path: str) -> tuple[list[dict[str, Any]], bool]:
    sent: list[dict[str, Any]] = []
    reached = {"app": False}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached["app"] = True
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    gate.app = app
    await gate(dict(type="http", path=path), receive, send)  # type: ignore[arg-type]  # a minimal scope
    return sent, reached["app"]


async def test_serving_passes_everything_through() -> None:
    gate = DrainGate(None, Lifecycle(state="serving"))  # type: ignore[arg-type]  # app set by _call
    sent, reached = await _call(gate, "/v1/chat/completions")
    assert reached and sent[0]["status"] == 200


async def test_draining_refuses_new_requests_with_an_openai_error_and_closes() -> None:
    gate = DrainGate(None, Lifecycle(state="draining"))  # type: ignore[arg-type]  # app set by _call
    sent, reached = await _call(gate, "/v1/chat/completions")
    assert not reached
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 503
    assert headers[b"connection"] == b"close" and headers[b"retry-after"] == b"1"
    assert int(headers[b"content-length"]) == len(body["body"])
    assert json.loads(body["body"]) == {"error": {
        "message": "the gateway is shutting down; retry on another replica",
        "type": "api_error", "param": None, "code": "shutting_down"}}  # as every 503


async def test_draining_still_answers_probes() -> None:
    gate = DrainGate(None, Lifecycle(state="draining"))  # type: ignore[arg-type]  # app set by _call
    for path in ("/health/ready", "/health/live", "/health/models"):
        _, reached = await _call(gate, path)
        assert reached, path
