"""Every route's real responses, read off a real HTTP server (uvicorn, the app over the scripted
backend of tests/integration/test_chat_tools.py), validated against OpenAI's published schemas as
a client generated from the spec would: chat (plain, tools, logprobs, n, JSON) and every stream
chunk, completions, responses, embeddings, models, and error bodies."""

from __future__ import annotations

import base64
import json
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.triton.server import free_port
from tests.integration.keys_support import ADMIN, ROOT, _stop, _wait_http, auth
from tests.integration.test_chat_tools import TOOLS, USER
from tests.spec import errors, validate

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    work = tmp_path_factory.mktemp("spec")
    port = free_port()
    env = {**_env(), "CHUNGUS_ADMIN_KEY": ADMIN, "CHUNGUS_ACCESS_LOG": "false",
           "CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'keys.db'}",
           "CHUNGUS_RESPONSES_STORE": "true", "CHAT_TOOLS_DIR": str(work)}
    log = work / "gateway.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--factory", "tests.integration.test_chat_tools:create",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/health/live", process, log, 60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=auth(ADMIN), timeout=30) as c:
            yield c
    finally:
        _stop(process)


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _events(response: httpx.Response) -> list[Any]:
    """The JSON data of every SSE event (``[DONE]`` left out)."""
    assert response.status_code == 200, response.text
    out = []
    for line in response.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


CHAT_BODIES = {
    "plain": {},
    "tools": {"tools": TOOLS},
    "named tool": {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
    "required tool": {"tools": TOOLS, "tool_choice": "required"},
    "logprobs": {"logprobs": True, "top_logprobs": 3},
    "n": {"n": 3, "seed": 1, "logprobs": True},
    "json": {"response_format": {"type": "json_object"}},
    "usage chunk": {"stream_options": {"include_usage": True}},
}


@pytest.mark.parametrize("extra", CHAT_BODIES.values(), ids=CHAT_BODIES.keys())
def test_chat_completion_and_every_chunk_conform(server: httpx.Client, extra: dict[str, Any]) -> None:
    body = {"model": "chat-a", "messages": USER, **extra}
    if "stream_options" not in extra:
        r = server.post(CHAT, json=body)
        assert r.status_code == 200, r.text
        validate("CreateChatCompletionResponse", r.json())
        for choice in r.json()["choices"]:  # required, null where they do not apply
            assert "refusal" in choice["message"] and "logprobs" in choice
    chunks = _events(server.post(CHAT, json={**body, "stream": True}))
    assert len(chunks) >= 3
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)


def test_the_tool_call_message_has_null_content_and_validates(server: httpx.Client) -> None:
    r = server.post(CHAT, json={"model": "chat-a", "messages": USER, "tools": TOOLS,
                                "tool_choice": "required"}).json()
    message = r["choices"][0]["message"]
    assert message["content"] is None and message["refusal"] is None
    assert message["tool_calls"][0]["function"] == {"name": "get_weather",
                                                    "arguments": '{"city": "Paris"}'}
    validate("CreateChatCompletionResponse", r)


def test_the_schema_check_catches_a_missing_required_field(server: httpx.Client) -> None:
    """The test would see a regression: today's body without ``logprobs`` is refused."""
    body = server.post(CHAT, json={"model": "chat-a", "messages": USER}).json()
    del body["choices"][0]["logprobs"]
    assert any("'logprobs' is a required property" in e
               for e in errors("CreateChatCompletionResponse", body))


def test_completions_conform(server: httpx.Client) -> None:
    r = server.post("/v1/completions", json={"model": "chat-a", "prompt": "Say hi", "n": 2})
    assert r.status_code == 200, r.text
    validate("CreateCompletionResponse", r.json())
    for chunk in _events(server.post("/v1/completions", json={
            "model": "chat-a", "prompt": "Say hi", "stream": True,
            "stream_options": {"include_usage": True}})):
        # Chunks before a choice's last carry finish_reason null, as OpenAI's own streams do;
        # this schema's enum has no null (the chat chunk's is nullable).
        found = [e for e in errors("CreateCompletionResponse", chunk)
                 if not re.fullmatch(r"choices/\d+/finish_reason: None is not (of type 'string'|one of .*)", e)]
        assert not found, found


def test_responses_conform(server: httpx.Client) -> None:
    r = server.post("/v1/responses", json={"model": "chat-a", "input": "Say hi"})
    assert r.status_code == 200, r.text
    validate("Response", r.json())
    validate("Response", server.get(f"/v1/responses/{r.json()['id']}").json())
    for event in _events(server.post("/v1/responses", json={"model": "chat-a", "input": "Say hi",
                                                            "stream": True})):
        validate("ResponseStreamEvent", event)


def test_embeddings_conform(server: httpx.Client) -> None:
    floats = server.post("/v1/embeddings", json={"model": "emb", "input": ["a", "bb"]})
    assert floats.status_code == 200, floats.text
    validate("CreateEmbeddingResponse", floats.json())
    # base64: the spec types ``embedding`` as an array only, yet OpenAI (and every SDK) sends and
    # reads a base64 string of little-endian float32 there; the rest of the body must conform.
    packed = server.post("/v1/embeddings", json={"model": "emb", "input": ["a", "bb"],
                                                 "encoding_format": "base64"}).json()
    for item in packed["data"]:
        item["embedding"] = list(struct.unpack(f"<{len(base64.b64decode(item['embedding'])) // 4}f",
                                               base64.b64decode(item["embedding"])))
    validate("CreateEmbeddingResponse", packed)
    assert [d["embedding"] for d in packed["data"]] == [d["embedding"] for d in floats.json()["data"]]


def test_models_conform(server: httpx.Client) -> None:
    listed = server.get("/v1/models").json()
    validate("ListModelsResponse", listed)
    assert {m["id"] for m in listed["data"]} == {"chat-a", "plain", "emb"}
    validate("Model", server.get("/v1/models/chat-a").json())


ERRORS = [
    ("POST", CHAT, {"model": "chat-a", "messages": []}, ADMIN, 400),
    ("POST", CHAT, {"model": "chat-a", "messages": USER, "tools": [{"type": "x"}]}, ADMIN, 400),
    ("POST", CHAT, {"model": "nope", "messages": USER}, ADMIN, 404),
    ("POST", CHAT, {"model": "chat-a", "messages": USER}, "sk-wrong", 401),
    ("POST", "/v1/embeddings", {"model": "emb"}, ADMIN, 400),
    ("POST", "/v1/completions", {"model": "chat-a", "prompt": "x", "best_of": 3}, ADMIN, 400),
    ("GET", "/v1/models/nope", None, ADMIN, 404),
    ("GET", "/v1/chat/completions", None, ADMIN, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "key", "status"), ERRORS)
def test_error_bodies_conform(server: httpx.Client, method: str, path: str, body: Any, key: str,
                              status: int) -> None:
    r = server.request(method, path, json=body, headers=auth(key))
    assert r.status_code == status, r.text
    validate("ErrorResponse", r.json())


def test_a_refused_stream_request_conforms(server: httpx.Client) -> None:
    """A stream refused before its first byte is a plain JSON error with its status."""
    r = server.post(CHAT, json={"model": "chat-a", "messages": USER, "stream": True, "n": 99})
    assert r.status_code == 400
    validate("ErrorResponse", r.json())
    assert r.json()["error"]["param"] == "n"
