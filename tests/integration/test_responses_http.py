"""POST /v1/responses over the fake backend, through the app and the stock openai SDK: the response
object and every streamed event checked against OpenAI's schemas, refusals by parameter name,
storage scoped per key (SQLite and PostgreSQL), keys and usage as for chat."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import msgspec
import openai
import pydantic
import pytest
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.backends.base import Delta, GenerationRequest, TokenLogprob, TopLogprob
from gateway.backends.fake import FakeBackend
from gateway.errors import ServiceUnavailableError
from gateway.registry import ModelEntry, Registry
from gateway.responses.events import EventStream
from gateway.settings import Settings
from tests.integration.keys_support import ADMIN, auth, new_key
from tests.spec import validate

TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}"


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    (tmp_path / "t.jinja").write_text(TEMPLATE)
    return Registry(models=(
        ModelEntry(id="chat-a", triton_model="chat_a", chat_template="t.jinja",
                   default_max_tokens=16, max_tokens_limit=100),
        ModelEntry(id="emb", kind="embedding", triton_model="emb", contract="embedding"),
    ), base_dir=str(tmp_path))


@pytest.fixture()
def backend() -> FakeBackend:
    return FakeBackend(ready={"chat_a", "emb"})


def _client(registry: Registry, backend: FakeBackend, **settings: Any) -> TestClient:
    values: dict[str, Any] = {"auth_enabled": False, "access_log": False, **settings}
    return TestClient(create_app(Settings(**values), backend, registry=registry))


@pytest.fixture()
def client(registry: Registry, backend: FakeBackend, tmp_path: Path) -> Iterator[TestClient]:
    with _client(registry, backend, responses_store=True,
                 database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as c:
        yield c


def _sdk(client: TestClient, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver.local/v1", api_key=key, http_client=client,
                         max_retries=0)


def _events(body: bytes) -> list[dict[str, Any]]:
    """Every SSE event of a Responses stream, checked: ``event:`` names the ``data:`` type."""
    events = []
    for block in body.decode().split("\n\n")[:-1]:
        head, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert head == f"event: {event['type']}"
        validate("ResponseStreamEvent", event)
        events.append(event)
    assert body.endswith(b"\n\n") and b"[DONE]" not in body
    return events


def test_sdk_create_returns_the_spec_response(client: TestClient, backend: FakeBackend) -> None:
    r = client.post("/v1/responses", json={"model": "chat-a", "input": "hi there",
                                           "instructions": "Be brief.", "metadata": {"t": "1"}})
    assert r.status_code == 200
    body = r.json()
    validate("Response", body)
    assert re.fullmatch(r"resp_[0-9a-f]{32}", body["id"])
    assert (body["status"], body["model"], body["instructions"], body["metadata"]) == (
        "completed", "chat-a", "Be brief.", {"t": "1"})
    assert body["output"][0]["content"][0]["text"] == "Hello world!"
    # The fake backend counts the prompt's words: "<system>Be brief.<user>hi there"
    assert body["usage"]["input_tokens"] == 3 and body["usage"]["output_tokens"] == 3
    assert body["usage"]["total_tokens"] == 6
    assert backend.requests[-1].prompt == "<system>Be brief.<user>hi there"

    response = _sdk(client).responses.create(model="chat-a", input="hi", temperature=0.3, top_p=0.5)
    assert response.output_text == "Hello world!"
    assert response.status == "completed" and response.usage is not None
    assert (backend.requests[-1].temperature, backend.requests[-1].top_p) == (0.3, 0.5)
    assert client.post("/api/v1/responses", json={"model": "chat-a", "input": "x"}).status_code == 200


def test_sdk_stream_events_in_order(client: TestClient) -> None:
    events = list(_sdk(client).responses.create(model="chat-a", input="hi", stream=True))
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
        "response.output_text.delta", "response.output_text.done", "response.content_part.done",
        "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(11))
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output_text == "Hello world!"
    assert completed.usage is not None and completed.usage.output_tokens == 3


def test_raw_stream_is_valid_and_cut_by_max_output_tokens(client: TestClient) -> None:
    r = client.post("/v1/responses", json={"model": "chat-a", "input": "hi", "stream": True,
                                           "max_output_tokens": 2})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _events(r.content)
    final = events[-1]
    assert final["type"] == "response.incomplete"
    assert final["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["response"]["output"][0]["content"][0]["text"] == "Hello world"
    assert final["response"]["max_output_tokens"] == 2


def test_non_streaming_cut_is_incomplete(client: TestClient) -> None:
    response = _sdk(client).responses.create(model="chat-a", input="hi", max_output_tokens=1)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "Hello"


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
    ({"background": True}, 400, "background"),
    ({"reasoning": {"effort": "high"}}, 400, "reasoning"),
    ({"include": ["file_search_call.results"]}, 400, "include"),
    ({"top_logprobs": 21}, 400, "top_logprobs"),
    ({"max_output_tokens": 1000}, 400, "max_output_tokens"),
    ({"max_output_tokens": 0}, 400, "max_output_tokens"),
    ({"temperature": 3}, 400, "temperature"),
    ({"input": [{"role": "robot", "content": "x"}]}, 400, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"type": "input_image",
                                               "image_url": "https://example.com/a.png"}]}]},
     400, "input"),
    ({"input": 7}, 400, "input"),
    ({"model": "emb"}, 400, "model"),
    ({"model": "nope"}, 404, "model"),
    ({"previous_response_id": "resp_unknown"}, 404, "previous_response_id"),
])
def test_refusals_name_the_parameter(client: TestClient, backend: FakeBackend, body: dict[str, Any],
                                     status: int, param: str) -> None:
    for stream in (False, True):
        r = client.post("/v1/responses", json={"model": "chat-a", "input": "hi", "stream": stream,
                                               **body})
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["param"] == param
        validate("ErrorResponse", r.json())
    assert backend.requests == []


def test_backend_down_before_the_first_byte_keeps_its_status(client: TestClient,
                                                            backend: FakeBackend) -> None:
    backend.fail_before = ServiceUnavailableError("model 'chat-a' is not ready")
    for stream in (False, True):
        r = client.post("/v1/responses", json={"model": "chat-a", "input": "hi", "stream": stream})
        assert r.status_code == 503
        assert r.json()["error"]["message"] == "model 'chat-a' is not ready"


def test_error_mid_stream_is_the_error_event_then_failed(client: TestClient,
                                                         backend: FakeBackend) -> None:
    backend.fail_after, backend.fail_mid = 1, ServiceUnavailableError("Triton went away")
    r = client.post("/v1/responses", json={"model": "chat-a", "input": "hi", "stream": True})
    assert r.status_code == 200
    events = _events(r.content)
    assert [e["type"] for e in events][-3:] == ["response.output_text.delta", "error",
                                                "response.failed"]
    assert events[-2]["message"] == "Triton went away"
    assert events[-2]["code"] == "service_unavailable"
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["message"] == "Triton went away"


def test_previous_response_id_continues_the_conversation(client: TestClient,
                                                         backend: FakeBackend) -> None:
    sdk = _sdk(client)
    first = sdk.responses.create(model="chat-a", input="first", instructions="old rules")
    second = sdk.responses.create(model="chat-a", input="second", previous_response_id=first.id,
                                  instructions="new rules", stream=True)
    done = list(second)[-1].response  # type: ignore[union-attr]
    assert backend.requests[-1].prompt == (
        "<system>new rules<user>first<assistant>Hello world!<user>second")
    assert done.previous_response_id == first.id
    third = sdk.responses.create(model="chat-a", input="third", previous_response_id=done.id)
    assert backend.requests[-1].prompt == ("<user>first<assistant>Hello world!<user>second"
                                           "<assistant>Hello world!<user>third")
    fetched = sdk.responses.retrieve(third.id)
    assert fetched.id == third.id and fetched.output_text == "Hello world!"
    validate("Response", client.get(f"/v1/responses/{third.id}").json())


def test_store_false_is_not_kept(client: TestClient) -> None:
    sdk = _sdk(client)
    response = sdk.responses.create(model="chat-a", input="x", store=False)
    assert response.store is False
    r = client.get(f"/v1/responses/{response.id}")
    assert r.status_code == 404
    assert r.json()["error"]["message"] == f"Response with id '{response.id}' not found."


def test_delete(client: TestClient) -> None:
    response = _sdk(client).responses.create(model="chat-a", input="x")
    r = client.delete(f"/v1/responses/{response.id}")
    assert r.status_code == 200
    assert r.json() == {"id": response.id, "object": "response", "deleted": True}
    assert client.get(f"/v1/responses/{response.id}").status_code == 404
    assert client.delete(f"/v1/responses/{response.id}").status_code == 404


def test_without_storage_nothing_is_kept_and_previous_is_refused(
        registry: Registry, backend: FakeBackend) -> None:
    with _client(registry, backend) as client:
        response = _sdk(client).responses.create(model="chat-a", input="x")
        assert response.store is False
        assert client.get(f"/v1/responses/{response.id}").status_code == 404
        r = client.post("/v1/responses", json={"model": "chat-a", "input": "y",
                                               "previous_response_id": response.id})
        assert r.status_code == 400
        assert (r.json()["error"]["param"], r.json()["error"]["code"]) == (
            "previous_response_id", "unsupported_parameter")


def test_retention_limit(registry: Registry, backend: FakeBackend, tmp_path: Path) -> None:
    with _client(registry, backend, responses_store=True, responses_retention_s=0.5,
                 database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as client:
        response = _sdk(client).responses.create(model="chat-a", input="x")
        assert client.get(f"/v1/responses/{response.id}").status_code == 200
        time.sleep(0.6)
        assert client.get(f"/v1/responses/{response.id}").status_code == 404


def test_keys_scope_storage_and_usage_is_billed_as_chat(registry: Registry, backend: FakeBackend,
                                                        database_url: str) -> None:
    with _client(registry, backend, auth_enabled=True, admin_key=ADMIN, database_url=database_url,
                 responses_store=True) as client:
        assert client.post("/v1/responses", json={"model": "chat-a", "input": "x"}).status_code == 401
        owner, other = new_key(client), new_key(client)
        response = _sdk(client, owner["key"]).responses.create(model="chat-a", input="hi there")
        r = client.post("/v1/responses", headers=auth(owner["key"]),
                        json={"model": "chat-a", "input": "again", "stream": True})
        assert r.status_code == 200
        assert client.get(f"/v1/responses/{response.id}", headers=auth(owner["key"])).status_code == 200
        for method in ("GET", "DELETE"):
            r = client.request(method, f"/v1/responses/{response.id}", headers=auth(other["key"]))
            assert r.status_code == 404
        r = client.post("/v1/responses", headers=auth(other["key"]),
                        json={"model": "chat-a", "input": "y", "previous_response_id": response.id})
        assert (r.status_code, r.json()["error"]["param"]) == (404, "previous_response_id")
        usage = client.get(f"/admin/usage?key_id={owner['id']}", headers=auth(ADMIN)).json()["data"]
        assert [(u["requests"], u["prompt_tokens"], u["completion_tokens"]) for u in usage] == [(2, 3, 6)]


def test_the_openapi_document_describes_what_is_sent(client: TestClient) -> None:
    import jsonschema

    doc = client.get("/openapi.json").json()
    ok = doc["paths"]["/v1/responses"]["post"]["responses"]["200"]["content"]

    def check(schema: dict[str, Any], instance: object) -> None:
        jsonschema.validate(instance, {**schema, "components": doc["components"]})

    check(ok["application/json"]["schema"],
          client.post("/v1/responses", json={"model": "chat-a", "input": "hi"}).json())
    event = ok["text/event-stream"]["schema"]
    assert event["required"] == ["event", "data"]
    r = client.post("/v1/responses", json={"model": "chat-a", "input": "hi", "stream": True})
    for sent in _events(r.content):
        check(event["properties"]["data"]["contentSchema"], sent)
    stored = client.get(f"/v1/responses/{sent['response']['id']}")
    assert stored.status_code == 200
    check(doc["paths"]["/v1/responses/{response_id}"]["get"]["responses"]["200"]["content"]
          ["application/json"]["schema"], stored.json())


TOOL_TEXT = ("<tool_call>", '{"name": "get_weather", ', '"arguments": {"city": "Paris"}}', "</tool_call>")
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}
needs_tools = pytest.mark.skipif(
    "tool_parser" not in {f.name for f in msgspec.structs.fields(ModelEntry)},
    reason="chat completions have no tool-call parsers yet")


@needs_tools
def test_function_call_round_trip(tmp_path: Path) -> None:
    (tmp_path / "t.jinja").write_text(TEMPLATE)
    registry = Registry(models=(ModelEntry(id="chat-a", triton_model="chat_a", chat_template="t.jinja",
                                           tool_parser="hermes"),),  # type: ignore[call-arg]
                        base_dir=str(tmp_path))
    backend = FakeBackend(ready={"chat_a"}, pieces=TOOL_TEXT)
    with _client(registry, backend) as client:
        sdk = _sdk(client)
        first = sdk.responses.create(model="chat-a", input="Weather in Paris?", tools=[WEATHER])  # type: ignore[list-item]
        raw = client.post("/v1/responses", json={"model": "chat-a", "input": "Weather in Paris?",
                                                 "tools": [WEATHER]}).json()
        validate("Response", raw)
        assert raw["output"][-1]["type"] == "function_call"
        calls = [o for o in first.output if o.type == "function_call"]
        assert [(c.name, json.loads(c.arguments)) for c in calls] == [("get_weather", {"city": "Paris"})]
        assert calls[0].call_id and first.status == "completed"
        events = _events(client.post("/v1/responses", json={
            "model": "chat-a", "input": "Weather in Paris?", "tools": [WEATHER], "stream": True}).content)
        added = [e for e in events if e["type"] == "response.output_item.added"]
        assert added[-1]["item"]["type"] == "function_call"
        arguments = "".join(e["delta"] for e in events
                            if e["type"] == "response.function_call_arguments.delta")
        done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert json.loads(arguments) == json.loads(done["arguments"]) == {"city": "Paris"}
        assert done["name"] == "get_weather"
        backend.pieces = ("18", " degrees")
        second = sdk.responses.create(model="chat-a", tools=[WEATHER], input=[  # type: ignore[list-item]
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather",
             "arguments": calls[0].arguments},
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C sunny"}])
        assert second.output_text == "18 degrees"
        assert "18C sunny" in backend.requests[-1].prompt



class Color(pydantic.BaseModel):
    name: str
    hex: str


def test_parse_with_a_pydantic_model_is_constrained_decoding(registry: Registry) -> None:
    backend = FakeBackend(ready={"chat_a"}, pieces=('{"name": "red", ', '"hex": "#ff0000"}'))
    with _client(registry, backend) as client:
        parsed = _sdk(client).responses.parse(model="chat-a", input="A color?", text_format=Color)
        assert parsed.output_parsed == Color(name="red", hex="#ff0000")
        guide = backend.requests[-1].guide
        assert guide is not None and (guide.type, guide.param) == ("json_schema", "response_format")
        assert json.loads(guide.text) == Color.model_json_schema() | {"additionalProperties": False}
        assert parsed.text is not None and parsed.text.format.type == "json_schema"
        r = client.post("/v1/responses", json={"model": "chat-a", "input": "x",
                                               "text": {"format": {"type": "json_object"}}})
        assert r.status_code == 200
        assert backend.requests[-1].guide is not None
        assert backend.requests[-1].guide.type == "json"
        r = client.post("/v1/responses", json={"model": "chat-a", "input": "x", "text": {
            "format": {"type": "json_schema", "name": "bad name!", "schema": {"type": "object"}}}})
        assert (r.status_code, r.json()["error"]["param"]) == (400, "text.format.name")


class LogprobBackend(FakeBackend):
    """The fake backend, with each piece's log-probability and one alternative."""

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        async for delta in super().generate(request):
            if delta.text:
                top = (TopLogprob("Bye", b"Bye", -2.0),) if request.top_logprobs else ()
                delta.logprobs = [TokenLogprob(delta.text, delta.text.encode(), -0.5, top)]
            yield delta


def test_logprobs_in_the_output_text_and_on_deltas(registry: Registry) -> None:
    backend = LogprobBackend(ready={"chat_a"}, pieces=("Hi", "!"))
    with _client(registry, backend) as client:
        r = client.post("/v1/responses", json={"model": "chat-a", "input": "x", "top_logprobs": 1})
        validate("Response", r.json())
        assert (backend.requests[-1].logprobs, backend.requests[-1].top_logprobs) == (True, 1)
        assert r.json()["output"][0]["content"][0]["logprobs"] == [
            {"token": "Hi", "logprob": -0.5, "bytes": [72, 105],
             "top_logprobs": [{"token": "Bye", "logprob": -2.0, "bytes": [66, 121, 101]}]},
            {"token": "!", "logprob": -0.5, "bytes": [33],
             "top_logprobs": [{"token": "Bye", "logprob": -2.0, "bytes": [66, 121, 101]}]}]
        r = client.post("/v1/responses", json={"model": "chat-a", "input": "x", "stream": True,
                                               "include": ["message.output_text.logprobs"]})
        assert (backend.requests[-1].logprobs, backend.requests[-1].top_logprobs) == (True, 0)
        deltas = [e for e in _events(r.content) if e["type"] == "response.output_text.delta"]
        assert [d["logprobs"] for d in deltas] == [
            [{"token": "Hi", "logprob": -0.5, "top_logprobs": []}],
            [{"token": "!", "logprob": -0.5, "top_logprobs": []}]]
        plain = client.post("/v1/responses", json={"model": "chat-a", "input": "x"}).json()
        assert backend.requests[-1].logprobs is False
        assert plain["output"][0]["content"][0]["logprobs"] == []


def test_a_bug_of_ours_mid_stream_is_a_generic_error_event(client: TestClient, backend: FakeBackend,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: EventStream, chunk: dict[str, Any]) -> list[bytes]:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(EventStream, "chunk", broken)
    r = client.post("/v1/responses", json={"model": "chat-a", "input": "hi", "stream": True})
    events = _events(r.content)
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "error",
                                           "response.failed"]
    assert events[2]["code"] == "internal_error" and b"secret" not in r.content
    assert backend.cancelled == 1  # the backend call was closed
