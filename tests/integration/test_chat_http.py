"""The HTTP layer with the fake backend at the backend seam: exact bytes, every error code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.backends.fake import FakeBackend
from gateway.errors import BadGatewayError, GatewayTimeoutError, ServiceUnavailableError
from gateway.registry import ModelEntry, Registry
from gateway.settings import Settings

TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    (tmp_path / "t.jinja").write_text(TEMPLATE)
    models = (
        ModelEntry(id="chat-a", triton_model="chat_a", chat_template="t.jinja",
                   default_max_tokens=16, max_tokens_limit=100, created=1694268190),
        ModelEntry(id="off", triton_model="off", chat_template="t.jinja", active=False),
        ModelEntry(id="emb", kind="embedding", triton_model="emb", contract="embedding"),
        ModelEntry(id="not-loaded", triton_model="not_loaded", chat_template="t.jinja"),
    )
    return Registry(models=models, base_dir=str(tmp_path))


@pytest.fixture()
def backend() -> FakeBackend:
    return FakeBackend(ready={"chat_a", "off", "emb"})


@pytest.fixture()
def client(registry: Registry, backend: FakeBackend) -> Iterator[TestClient]:
    app = create_app(Settings(auth_enabled=False, max_body_bytes=4096, access_log=False),
                     backend, registry=registry)
    with TestClient(app) as c:
        yield c


def _chat(**extra: object) -> dict:
    return {"model": "chat-a", "messages": [{"role": "user", "content": "hi there"}], **extra}


def _normalise(body: bytes) -> bytes:
    body = re.sub(rb"chatcmpl-[0-9a-f]{32}", b"chatcmpl-X", body)
    return re.sub(rb'"created":\d+', b'"created":0', body)


def test_exact_sse_bytes(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=_chat(stream=True))
    head = b'data: {"id":"chatcmpl-X","object":"chat.completion.chunk","created":0,"model":"chat-a","choices":'
    assert _normalise(r.content) == (
        head + b'[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null,"logprobs":null}]}\n\n'
        + head + b'[{"index":0,"delta":{"content":" world"},"finish_reason":null,"logprobs":null}]}\n\n'
        + head + b'[{"index":0,"delta":{"content":"!"},"finish_reason":null,"logprobs":null}]}\n\n'
        + head + b'[{"index":0,"delta":{},"finish_reason":"stop","logprobs":null}],'
        b'"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}\n\n'
        b"data: [DONE]\n\n"
    )


def test_include_usage_adds_a_usage_chunk(client: TestClient) -> None:
    r = client.post("/v1/chat/completions",
                    json=_chat(stream=True, stream_options={"include_usage": True}))
    events = r.content.split(b"\n\n")
    assert b'"choices":[],"usage":{"prompt_tokens":2' in events[-3]
    assert events[-2] == b"data: [DONE]"


def test_exact_non_streaming_body(client: TestClient) -> None:
    r = client.post("/api/v1/chat/completions", json=_chat())
    assert r.status_code == 200
    assert _normalise(r.content) == (
        b'{"id":"chatcmpl-X","object":"chat.completion","created":0,"model":"chat-a",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"Hello world!","refusal":null},'
        b'"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}'
    )


def test_models_list_exact(client: TestClient) -> None:
    r = client.get("/v1/models")
    data = r.json()["data"]
    assert [m["id"] for m in data] == ["chat-a", "emb"]  # inactive and not-ready are hidden
    assert data[0] == {"id": "chat-a", "object": "model", "created": 1694268190,
                       "owned_by": "chungus", "permission": [], "root": "chat-a", "parent": None,
                       "capabilities": {"tools": False, "structured_outputs": True,
                                        "logprobs": True, "vision": False}}
    assert data[1]["capabilities"] == {"tools": False, "structured_outputs": False,
                                       "logprobs": False, "vision": False}
    assert client.get("/api/v1/models/chat-a").json()["id"] == "chat-a"
    assert client.get("/v1/models/off").status_code == 404
    assert client.get("/v1/models/not-loaded").status_code == 404


def test_prompt_is_rendered_with_the_model_template(client: TestClient, backend: FakeBackend) -> None:
    client.post("/v1/chat/completions", json={"model": "chat-a", "messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": [
            {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "developer", "content": "D"}]})
    assert backend.requests[-1].prompt == "<system>S<user>a\nb<system>D"


def test_parameters_reach_the_backend(client: TestClient, backend: FakeBackend) -> None:
    client.post("/v1/chat/completions", json=_chat(
        temperature=0.5, top_p=0.9, top_k=5, seed=3, stop="x", max_completion_tokens=7,
        presence_penalty=0.1, frequency_penalty=0.2))
    req = backend.requests[-1]
    assert (req.temperature, req.top_p, req.top_k, req.seed, tuple(req.stop), req.max_tokens) == (
        0.5, 0.9, 5, 3, ("x",), 7)
    assert (req.presence_penalty, req.frequency_penalty) == (0.1, 0.2)
    client.post("/v1/chat/completions", json=_chat())
    assert backend.requests[-1].max_tokens == 16  # registry default


def test_length_finish(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=_chat(max_tokens=2))
    assert r.json()["choices"][0]["finish_reason"] == "length"


ERRORS = [
    (b"{", 400, "invalid_json", None),
    (b"[]", 400, None, None),
    (b'{"model":"chat-a"}', 400, "invalid_messages", "messages"),
    (b'{"model":"chat-a","messages":[]}', 400, "invalid_messages", "messages"),
    (b'{"model":"chat-a","messages":[{"role":"function","content":"x"}]}', 400, "invalid_messages",
     "messages[0].role"),
    (b'{"model":"chat-a","messages":[{"role":"user"}]}', 400, "invalid_messages",
     "messages[0].content"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":[]}]}', 400, "invalid_messages",
     "messages[0].content"),
    (b'{"model":"chat-a","messages":[{"content":"x"}]}', 400, "invalid_messages", "messages[0]"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":[{"type":"image_url","image_url":'
     b'{"url":"https://x/y.png"}}]}]}', 400, "invalid_model_type",
     "messages[0].content[0].image_url.url"),
    (b'{"model":"nope","messages":[{"role":"user","content":"x"}]}', 404, "model_not_found", "model"),
    (b'{"model":"off","messages":[{"role":"user","content":"x"}]}', 404, "model_not_found", "model"),
    (b'{"model":"emb","messages":[{"role":"user","content":"x"}]}', 400, "invalid_model_type",
     "model"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"temperature":-1}', 400,
     "invalid_value", "temperature"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"top_p":1.5}', 400,
     "invalid_value", "top_p"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"max_tokens":0}', 400,
     "invalid_value", "max_tokens"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"max_tokens":101}', 400,
     "invalid_value", "max_tokens"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"n":17}', 400,
     "invalid_value", "n"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"presence_penalty":3}', 400,
     "invalid_value", "presence_penalty"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"stop":["a"' + b',"b"' * 20
     + b"]}", 400, "invalid_value", "stop"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"top_k":-5}', 400,
     "invalid_value", "top_k"),
    (b'{"model":"chat-a","messages":[{"role":"user","content":"x"}],"max_tokens":"9"}', 400, None,
     "max_tokens"),
]


@pytest.mark.parametrize(("body", "status", "code", "param"), ERRORS)
def test_error_codes(client: TestClient, body: bytes, status: int, code: str | None,
                     param: str | None) -> None:
    r = client.post("/v1/chat/completions", content=body,
                    headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == "invalid_request_error" and error["message"]


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json=_chat(padding="x" * 8000))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request_too_large"


def test_unknown_path_and_wrong_method(client: TestClient) -> None:
    r = client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert r.headers["x-request-id"]
    r = client.get("/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(("error", "status"), [
    (ServiceUnavailableError("down"), 503), (GatewayTimeoutError("slow"), 504),
    (BadGatewayError("broken"), 502)])
def test_backend_errors_before_the_first_byte_keep_their_status(
    client: TestClient, backend: FakeBackend, error: Exception, status: int
) -> None:
    backend.fail_before = error  # type: ignore[assignment]
    for stream in (False, True):
        r = client.post("/v1/chat/completions", json=_chat(stream=stream))
        assert r.status_code == status
        assert r.json()["error"]["type"] == "api_error"


def test_error_after_the_first_byte_is_an_sse_error_event(client: TestClient,
                                                           backend: FakeBackend) -> None:
    backend.fail_after, backend.fail_mid = 1, GatewayTimeoutError("model stalled")
    r = client.post("/v1/chat/completions", json=_chat(stream=True))
    assert r.status_code == 200
    events = r.content.split(b"\n\n")
    assert b'"content":"Hello"' in events[0]
    assert events[1] == (b'data: {"error":{"message":"model stalled","type":"api_error",'
                         b'"param":null,"code":"timeout"}}')
    assert events[2] == b"data: [DONE]"


def test_unexpected_exception_is_a_generic_500(client: TestClient, backend: FakeBackend) -> None:
    backend.fail_before = RuntimeError("secret internals")  # type: ignore[assignment]
    r = client.post("/v1/chat/completions", json=_chat())
    assert r.status_code == 500
    assert "secret" not in r.text
    assert r.json()["error"]["code"] == "internal_error"


def test_request_id(client: TestClient) -> None:
    assert client.get("/v1/models", headers={"x-request-id": "abc-1"}).headers["x-request-id"] == "abc-1"
    bad = client.get("/v1/models", headers={"x-request-id": "bad id\x01"}).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", bad)


def test_health(client: TestClient, backend: FakeBackend) -> None:
    assert client.get("/health/live").status_code == 200
    # Ready means this gateway serves, whatever the models: one model that cannot load must not
    # take every replica out of its Service.
    assert client.get("/health/ready").status_code == 200
    models = client.get("/health/models")
    assert models.status_code == 503  # not-loaded is active but not ready
    assert models.json()["models"] == {"chat-a": True, "emb": True, "not-loaded": False}
    backend.ready.add("not_loaded")
    models = client.get("/health/models")
    assert models.status_code == 200 and all(models.json()["models"].values())
    backend.up = False
    assert client.get("/health/models").status_code == 503
    assert client.get("/health/ready").status_code == 200
