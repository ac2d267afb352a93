"""POST /v1/completions over HTTP with the fake backend at the backend seam: exact bytes, every
prompt form, n and lists of prompts, echo, legacy logprobs, refusals, keys and limits, and every
response and stream chunk validated against OpenAI's published schema."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from tokenizers import Tokenizer, models, pre_tokenizers

from gateway.app import create_app
from gateway.backends.base import Delta, FinishReason, GenerationRequest, TokenLogprob, TopLogprob
from gateway.backends.fake import FakeBackend
from gateway.errors import BadGatewayError, ServiceUnavailableError
from gateway.registry import ModelEntry, Registry
from gateway.settings import Settings
from tests.integration.keys_support import ADMIN, GatewayServer, auth, new_key, security_client
from tests.spec import errors, validate

VOCAB = {"<s>": 0, "hello": 1, "world": 2, "<unk>": 3}


class LogprobBackend(FakeBackend):
    """The fake backend, with per-token logprobs as a backend that has them sends them: one entry
    per token of each delta, alternatives when asked for (up to ``top_logprobs``)."""

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        if not request.logprobs:
            async for delta in super().generate(request):
                yield delta
            return
        self.requests.append(request)
        for sent, piece in enumerate(self.pieces, start=1):
            alts = (TopLogprob(token="x", bytes=b"x", logprob=-0.25),
                    TopLogprob(token=piece, bytes=piece.encode(), logprob=-0.5 * sent),
                    TopLogprob(token="y", bytes=b"y", logprob=-4.0))[: request.top_logprobs]
            yield Delta(text=piece, completion_tokens=sent,
                        logprobs=[TokenLogprob(token=piece, bytes=piece.encode(), logprob=-0.5 * sent, top=alts)])
        reason: FinishReason = "stop"
        yield Delta(finish_reason=reason, prompt_tokens=len(request.prompt.split()),
                    completion_tokens=len(self.pieces))


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<s>"])
    tok.save(str(tmp_path / "tokenizer.json"))
    return Registry(models=(
        ModelEntry(id="chat-a", triton_model="chat_a", max_tokens_limit=100, context_length=200),
        ModelEntry(id="tok", triton_model="tok", tokenizer="tokenizer.json", context_length=200),
        ModelEntry(id="emb", kind="embedding", triton_model="emb", contract="embedding"),
    ), base_dir=str(tmp_path))


@pytest.fixture()
def backend() -> FakeBackend:
    return LogprobBackend(ready={"chat_a", "tok", "emb"})


@pytest.fixture()
def client(registry: Registry, backend: FakeBackend) -> Iterator[TestClient[Any]]:
    app = create_app(Settings(auth_enabled=False, max_body_bytes=8192, access_log=False),
                     backend, registry=registry)
    with TestClient(app) as c:
        yield c


def _normalise(body: bytes) -> bytes:
    body = re.sub(rb"cmpl-[0-9a-f]{32}", b"cmpl-X", body)
    return re.sub(rb'"created":\d+', b'"created":0', body)


def _completion(client: TestClient[Any], **body: Any) -> dict[str, Any]:
    r = client.post("/v1/completions", json={"model": "chat-a", "prompt": "hi there", **body})
    assert r.status_code == 200, r.text
    data = dict(r.json())
    validate("CreateCompletionResponse", data)
    return data


def _chunks(client: TestClient[Any], **body: Any) -> list[dict[str, Any]]:
    r = client.post("/v1/completions", json={"model": "chat-a", "prompt": "hi there", "stream": True, **body})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = r.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    chunks = [json.loads(e[len(b"data: "):]) for e in events[:-2]]
    for chunk in chunks:
        _validate_chunk(chunk)
    return chunks


def _validate_chunk(chunk: dict[str, Any]) -> None:
    """A chunk is a CreateCompletionResponse, except that a choice's chunks before its last carry
    ``finish_reason: null``, as OpenAI's own streams do (the schema's enum has no null)."""
    found = [e for e in errors("CreateCompletionResponse", chunk)
             if not re.fullmatch(r"choices/\d+/finish_reason: None is not (of type 'string'|one of .*)", e)]
    assert not found, found
    assert chunk["object"] == "text_completion"


def test_exact_non_streaming_body(client: TestClient[Any]) -> None:
    r = client.post("/api/v1/completions", json={"model": "chat-a", "prompt": "hi there"})
    assert r.status_code == 200
    assert _normalise(r.content) == (
        b'{"id":"cmpl-X","object":"text_completion","created":0,"model":"chat-a","choices":'
        b'[{"text":"Hello world!","index":0,"logprobs":null,"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}')
    validate("CreateCompletionResponse", r.json())


def test_exact_sse_bytes(client: TestClient[Any]) -> None:
    r = client.post("/v1/completions", json={"model": "chat-a", "prompt": "hi there", "stream": True})
    head = b'data: {"id":"cmpl-X","object":"text_completion","created":0,"model":"chat-a","choices":'
    assert _normalise(r.content) == (
        head + b'[{"text":"Hello","index":0,"logprobs":null,"finish_reason":null}]}\n\n'
        + head + b'[{"text":" world","index":0,"logprobs":null,"finish_reason":null}]}\n\n'
        + head + b'[{"text":"!","index":0,"logprobs":null,"finish_reason":null}]}\n\n'
        + head + b'[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}\n\n'
        b"data: [DONE]\n\n")


def test_include_usage_adds_a_usage_chunk(client: TestClient[Any]) -> None:
    chunks = _chunks(client, stream_options={"include_usage": True})
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert all("usage" not in c for c in chunks[:-2])


def test_the_prompt_goes_as_it_is_with_openais_default_max_tokens(client: TestClient[Any],
                                                                   backend: FakeBackend) -> None:
    _completion(client, prompt="  <s>raw\n")
    sent = backend.requests[-1]
    assert (sent.prompt, sent.max_tokens, sent.prompt_tokens) == ("  <s>raw\n", 16, None)


def test_max_tokens_cuts_with_length(client: TestClient[Any]) -> None:
    data = _completion(client, max_tokens=2)
    assert data["choices"][0]["text"] == "Hello world"
    assert data["choices"][0]["finish_reason"] == "length"


def test_n_choices_with_seeds_and_summed_usage(client: TestClient[Any], backend: FakeBackend) -> None:
    data = _completion(client, n=3, seed=7)
    assert [(c["index"], c["text"]) for c in data["choices"]] == [(i, "Hello world!") for i in range(3)]
    assert data["usage"] == {"prompt_tokens": 2, "completion_tokens": 9, "total_tokens": 11}
    assert sorted(r.seed for r in backend.requests[-3:]) == [7, 8, 9]  # type: ignore[type-var]


def test_a_list_of_prompts_times_n_in_openais_index_order(client: TestClient[Any]) -> None:
    data = _completion(client, prompt=["a", "b c", "d e f"], n=2, echo=True)
    got = [(c["index"], c["text"]) for c in data["choices"]]
    assert got == [(0, "aHello world!"), (1, "aHello world!"), (2, "b cHello world!"),
                   (3, "b cHello world!"), (4, "d e fHello world!"), (5, "d e fHello world!")]
    # each prompt counted once (1 + 2 + 3 words), six choices of 3 tokens
    assert data["usage"] == {"prompt_tokens": 6, "completion_tokens": 18, "total_tokens": 24}


def test_streamed_n_choices_each_end_once_and_the_last_carries_usage(client: TestClient[Any]) -> None:
    chunks = _chunks(client, prompt=["a", "b"], n=2)
    assert all(len(c["choices"]) == 1 for c in chunks)
    texts: dict[int, str] = {}
    finishes: dict[int, list[str]] = {}
    for chunk in chunks:
        choice = chunk["choices"][0]
        texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
        if choice["finish_reason"] is not None:
            finishes.setdefault(choice["index"], []).append(choice["finish_reason"])
    assert texts == {i: "Hello world!" for i in range(4)}
    assert finishes == {i: ["stop"] for i in range(4)}
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 12, "total_tokens": 14}
    assert all("usage" not in c for c in chunks[:-1])


def test_streamed_echo_comes_first(client: TestClient[Any]) -> None:
    chunks = _chunks(client, prompt="Once", echo=True)
    assert chunks[0]["choices"][0]["text"] == "OnceHello"
    assert "".join(c["choices"][0]["text"] for c in chunks) == "OnceHello world!"


def test_token_id_prompts_are_decoded_with_the_models_tokenizer(client: TestClient[Any],
                                                                 backend: FakeBackend) -> None:
    data = _completion(client, model="tok", prompt=[[0, 1], [2]], echo=True)
    assert [c["text"] for c in data["choices"]] == ["<s> helloHello world!", "worldHello world!"]
    assert sorted(r.prompt for r in backend.requests[-2:]) == ["<s> hello", "world"]
    assert sorted(r.prompt_tokens for r in backend.requests[-2:]) == [1, 2]  # type: ignore[type-var]


def test_legacy_logprobs(client: TestClient[Any], backend: FakeBackend) -> None:
    data = _completion(client, logprobs=2)
    assert backend.requests[-1].logprobs and backend.requests[-1].top_logprobs == 2
    assert data["choices"][0]["logprobs"] == {
        "tokens": ["Hello", " world", "!"],
        "token_logprobs": [-0.5, -1.0, -1.5],
        "top_logprobs": [{"x": -0.25, "Hello": -0.5}, {"x": -0.25, " world": -1.0}, {"x": -0.25, "!": -1.5}],
        "text_offset": [0, 5, 11],
    }


def test_streamed_logprobs_offsets_run_on_across_chunks(client: TestClient[Any]) -> None:
    chunks = _chunks(client, logprobs=0)
    entries = [c["choices"][0]["logprobs"] for c in chunks if c["choices"][0]["logprobs"]["tokens"]]
    assert [(e["tokens"], e["text_offset"], e["top_logprobs"]) for e in entries] == [
        (["Hello"], [0], [{"Hello": -0.5}]), ([" world"], [5], [{" world": -1.0}]), (["!"], [11], [{"!": -1.5}])]


def test_logprobs_from_a_backend_without_them_are_refused(registry: Registry) -> None:
    app = create_app(Settings(auth_enabled=False, access_log=False), FakeBackend(ready={"chat_a"}),
                     registry=registry)
    with TestClient(app) as c:
        for stream in (False, True):
            r = c.post("/v1/completions", json={"model": "chat-a", "prompt": "p", "logprobs": 1, "stream": stream})
            assert r.status_code == 400
            assert r.json()["error"]["param"] == "logprobs"


class QuietStartBackend(FakeBackend):
    """A backend whose first delta carries nothing (a stream's empty opening response)."""

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        yield Delta()
        async for delta in super().generate(request):
            yield delta


def test_an_empty_first_delta_still_lets_a_refusal_keep_its_status(registry: Registry) -> None:
    app = create_app(Settings(auth_enabled=False, access_log=False), QuietStartBackend(ready={"chat_a"}),
                     registry=registry)
    with TestClient(app) as c:
        refused = c.post("/v1/completions", json={"model": "chat-a", "prompt": "p", "logprobs": 1, "stream": True})
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "logprobs"
        ok = c.post("/v1/completions", json={"model": "chat-a", "prompt": "p", "stream": True})
        texts = [json.loads(e[6:])["choices"][0]["text"] for e in ok.content.split(b"\n\n")[:-2]]
        assert texts == ["Hello", " world", "!", ""]


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"suffix": "end"}, 400, "suffix"),
    ({"best_of": 2}, 400, "best_of"),
    ({"logit_bias": {"1": 5}}, 400, "logit_bias"),
    ({"n": 17}, 400, "n"),
    ({"logprobs": 6}, 400, "logprobs"),
    ({"echo": True, "logprobs": 1}, 400, "logprobs"),
    ({"prompt": [1, 2]}, 400, "prompt"),
    ({"prompt": ""}, 400, "prompt"),
    ({"prompt": ["a", 1]}, 400, "prompt"),
    ({"prompt": {"text": "a"}}, 400, "prompt"),
    ({"prompt": "x" * 7000}, 400, "prompt"),
    ({"model": "tok", "prompt": [9]}, 400, "prompt"),
    ({"model": "emb"}, 400, "model"),
    ({"model": "nope"}, 404, "model"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"temperature": -1}, 400, "temperature"),
    ({"stop": ["s"] * 17}, 400, "stop"),
])
def test_refusals_name_the_parameter(client: TestClient[Any], body: dict[str, Any], status: int,
                                     param: str) -> None:
    for stream in (False, True):
        r = client.post("/v1/completions", json={"model": "chat-a", "prompt": "p", "stream": stream, **body})
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["param"] == param and error["message"]


def test_unknown_fields_are_ignored(client: TestClient[Any]) -> None:
    assert _completion(client, metadata={"a": 1}, service_tier="auto")["choices"][0]["text"] == "Hello world!"


def test_backend_errors_keep_their_status(client: TestClient[Any], backend: FakeBackend) -> None:
    backend.fail_before = ServiceUnavailableError("model not ready")
    for stream in (False, True):
        r = client.post("/v1/completions", json={"model": "chat-a", "prompt": "p", "stream": stream, "n": 2})
        assert r.status_code == 503
        assert r.json()["error"]["message"] == "model not ready"


def test_an_error_mid_stream_ends_the_stream_cleanly(client: TestClient[Any], backend: FakeBackend) -> None:
    backend.fail_after, backend.fail_mid = 1, BadGatewayError("broken contract")
    r = client.post("/v1/completions", json={"model": "chat-a", "prompt": "p", "stream": True})
    events = r.content.split(b"\n\n")
    assert r.status_code == 200
    assert json.loads(events[0][6:])["choices"][0]["text"] == "Hello"
    assert json.loads(events[1][6:])["error"]["message"] == "broken contract"
    assert events[2:] == [b"data: [DONE]", b""]


def test_keys_limits_and_usage_count_every_choice(tmp_path: Path, registry: Registry) -> None:
    backend = FakeBackend(ready={"chat_a"})
    with security_client(registry, f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}", backend=backend) as c:
        assert c.post("/v1/completions", json={"model": "chat-a", "prompt": "p"}).status_code == 401
        key = auth(new_key(c, tpm=100)["key"])
        ok = c.post("/v1/completions", json={"model": "chat-a", "prompt": "p", "n": 2}, headers=key)
        assert ok.status_code == 200, ok.text
        # 1 prompt token (estimate) + 7 choices x 16 max_tokens = 113 > 100: refused up front
        too_big = c.post("/v1/completions", json={"model": "chat-a", "prompt": "p", "n": 7}, headers=key)
        assert too_big.status_code == 429, too_big.text
        usage = c.get("/admin/usage", headers=auth(ADMIN)).json()["data"]
        assert [(u["prompt_tokens"], u["completion_tokens"]) for u in usage] == [(1, 6)]


def test_the_openapi_document_describes_the_route(client: TestClient[Any]) -> None:
    import jsonschema

    doc = client.get("/openapi.json").json()
    for path in ("/v1/completions", "/api/v1/completions"):
        op = doc["paths"][path]["post"]
        assert op["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/CompletionRequest"}
        ok = op["responses"]["200"]["content"]
        assert ok["application/json"]["schema"] == {"$ref": "#/components/schemas/Completion"}
        event = ok["text/event-stream"]["schema"]["properties"]["data"]["anyOf"][1]["contentSchema"]
        assert event["anyOf"][0] == {"$ref": "#/components/schemas/Completion"}
    components = doc["components"]

    def check(name: str, instance: object) -> None:
        jsonschema.validate(instance, {"$ref": f"#/components/schemas/{name}", "components": components})

    check("CompletionRequest", {"model": "m", "prompt": [[1, 2], [3]], "n": 2})
    for bad in ({"model": "m"}, {"model": "m", "prompt": ""}, {"model": "m", "prompt": []},
                {"model": "m", "prompt": [[]]}, {"model": "m", "prompt": [-1]}):
        with pytest.raises(jsonschema.ValidationError):
            check("CompletionRequest", bad)
    check("Completion", _completion(client, logprobs=1))
    for chunk in _chunks(client, n=2, stream_options={"include_usage": True}):
        check("Completion", chunk)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """The app in a real uvicorn process over the fake backend (tests/integration/fake_gateway.py)."""
    work = tmp_path_factory.mktemp("completions")
    gw = GatewayServer(work, {"CHUNGUS_DATABASE_URL": f"sqlite+aiosqlite:///{work / 'keys.db'}"})
    gw.start()
    yield gw
    gw.stop()


@pytest.mark.parametrize("path", ["/v1/completions", "/api/v1/completions"])
def test_the_key_is_checked_before_the_body_is_read(server: GatewayServer, path: str) -> None:
    from tests.integration.test_auth_before_body import _partial_upload

    reply, took = _partial_upload(server.port, path, None)
    assert reply.startswith("HTTP/1.1 401") and '"code":"invalid_api_key"' in reply, reply[:200]
    assert took < 3


def test_a_client_that_leaves_cancels_every_choice_is_billed_and_frees_its_slot(server: GatewayServer) -> None:
    """Model ``slow`` (50 ms a token): two choices streaming, the client leaves after 20 chunks;
    what was generated is billed and the key's one slot comes back."""
    import time

    import httpx

    made = httpx.post(server.base_url + "/admin/keys", json={"name": "t", "max_concurrent": 1},
                      headers=auth(ADMIN)).json()
    body = {"model": "slow", "prompt": "go", "max_tokens": 400, "n": 2, "stream": True}
    with httpx.Client(base_url=server.base_url, timeout=30) as client, client.stream(
            "POST", "/v1/completions", json=body, headers=auth(made["key"])) as response:
        seen = 0
        for line in response.iter_lines():
            seen += line.startswith("data: {")
            if seen == 20:
                break
    deadline, used = time.monotonic() + 10, 0
    while time.monotonic() < deadline and not used:
        rows = httpx.get(server.base_url + "/admin/usage", params={"key_id": made["id"]},
                         headers=auth(ADMIN)).json()["data"]
        used = sum(int(r["completion_tokens"]) for r in rows)
        time.sleep(0.1)
    assert 20 <= used < 80, used  # both choices stopped soon after the client left
    again = httpx.post(server.base_url + "/v1/completions", json={"model": "chat-a", "prompt": "p"},
                       headers=auth(made["key"]), timeout=10)
    assert again.status_code == 200, again.text
