"""Tools, structured outputs, logprobs and n on /v1/chat/completions, with the stock openai SDK
over the app in process, a scripted backend at the backend seam (it writes what a model of the
Hermes family would, and honors guides and logprobs as the engines do)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.backends.base import Delta, GenerationRequest, TokenLogprob, TopLogprob
from gateway.backends.fake import FakeBackend
from gateway.registry import ModelEntry, Registry
from gateway.settings import Settings

TEMPLATE = ("{% if tools %}TOOLS:{{ tools | tojson }}\n{% endif %}{% for m in messages %}"
            "<{{ m['role'] }}>{{ m['content'] }}{% if m['tool_calls'] %}"
            "CALLS:{{ m['tool_calls'] | tojson }}{% endif %}{% if m['role'] == 'tool' %}"
            "[{{ m['tool_call_id'] }}:{{ m['name'] }}]{% endif %}{% endfor %}")
CALLS_TEXT = ('Let me check.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", '
              '"unit": "C"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": '
              '{"tz": "Europe/Paris"}}\n</tool_call>')
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                         "unit": {"enum": ["C", "F"]}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]
USER = [{"role": "user", "content": "Weather and time in Paris?"}]


def _pieces(text: str, size: int = 7) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def scripted_text(request: GenerationRequest) -> str:
    """What the scripted model writes for ``request``."""
    guide = request.guide
    if guide is not None and guide.type == "json":
        return '{"ok": true}'
    if guide is not None and guide.param == "tool_choice":
        schema = json.loads(guide.text)
        if schema.get("type") == "array":
            return '[{"name": "get_weather", "arguments": {"city": "Paris"}}]'
        return '{"city": "Paris"}'
    if guide is not None:
        return '{"answer": 42}'
    if request.prompt.startswith("TOOLS:"):
        return CALLS_TEXT
    if request.seed is not None:
        return f"seed {request.seed}!"
    return "Hello world!"


def token_logprob(piece: str, k: int, top: int) -> TokenLogprob:
    alternatives = tuple(TopLogprob(f"{piece}~{j}", piece.encode() + bytes([j]), -0.25 * (j + 1))
                         for j in range(top))
    return TokenLogprob(token=piece, bytes=piece.encode(), logprob=-0.5 * (k + 1), top=alternatives)


class ScriptedBackend(FakeBackend):
    """One delta per 7 characters of ``scripted_text``, with per-token logprobs when asked."""

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        self.requests.append(request)
        pieces = _pieces(scripted_text(request))[: request.max_tokens]
        for k, piece in enumerate(pieces):
            logprobs = [token_logprob(piece, k, request.top_logprobs)] if request.logprobs else None
            yield Delta(text=piece, completion_tokens=k + 1, logprobs=logprobs)
        yield Delta(finish_reason="stop", prompt_tokens=len(request.prompt.split()),
                    completion_tokens=len(pieces))


def registry(folder: Path) -> Registry:
    (folder / "tools.jinja").write_text(TEMPLATE)
    return Registry(models=(
        ModelEntry(id="chat-a", triton_model="chat_a", chat_template="tools.jinja",
                   tool_parser="hermes", max_tokens_limit=400, created=1700000000),
        ModelEntry(id="plain", triton_model="plain", chat_template="tools.jinja"),
        ModelEntry(id="emb", kind="embedding", triton_model="emb", contract="embedding",
                   embedding_dim=4),
    ), base_dir=str(folder))


def create() -> Litestar:
    """uvicorn factory (``--factory``): the app over the scripted backend; settings from CHUNGUS_*
    variables, the template in ``CHAT_TOOLS_DIR``."""
    backend = ScriptedBackend(ready={"chat_a", "plain", "emb"})
    return create_app(Settings.from_env(os.environ), backend,
                      registry=registry(Path(os.environ["CHAT_TOOLS_DIR"])))


@pytest.fixture()
def backend() -> ScriptedBackend:
    return ScriptedBackend(ready={"chat_a", "plain", "emb"})


@pytest.fixture()
def http(tmp_path: Path, backend: ScriptedBackend) -> Iterator[TestClient]:
    app = create_app(Settings(auth_enabled=False, access_log=False), backend,
                     registry=registry(tmp_path))
    with TestClient(app) as c:
        yield c


@pytest.fixture()
def client(http: TestClient) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver.local/v1", api_key="x", http_client=http,
                         max_retries=0)


def _reassemble(stream: Any) -> dict[int, dict[str, Any]]:
    """Tool calls from streamed deltas by the SDK's rule: strings concatenated per index."""
    calls: dict[int, dict[str, Any]] = {}
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or ():
                call = calls.setdefault(tc.index, {"id": "", "type": "", "name": "", "arguments": ""})
                call["id"] += tc.id or ""
                call["type"] += tc.type or ""
                call["name"] += (tc.function.name or "") if tc.function else ""
                call["arguments"] += (tc.function.arguments or "") if tc.function else ""
    return calls


def test_auto_tool_calls_are_parsed_with_the_text_before_them(client: openai.OpenAI,
                                                             backend: ScriptedBackend) -> None:
    r = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS)  # type: ignore[arg-type]
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls or []
    assert [(c.type, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("function", "get_weather", '{"city": "Paris", "unit": "C"}'),
        ("function", "get_time", '{"tz": "Europe/Paris"}')]
    assert all(c.id.startswith("call_") and len(c.id) == 29 for c in calls)
    assert len({c.id for c in calls}) == 2
    prompt = backend.requests[-1].prompt
    assert prompt.startswith('TOOLS:[{"type": "function", "function": {"name": "get_weather", '
                             '"description": "Current weather", "parameters": {"type": "object"')
    assert backend.requests[-1].guide is None


def test_streamed_tool_calls_reassemble_to_the_non_streamed_ones(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS)  # type: ignore[arg-type]
    stream = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                            stream=True)
    chunks = list(stream)
    calls = _reassemble(chunks)
    expected = whole.choices[0].message.tool_calls or []
    assert [(c["type"], c["name"], c["arguments"]) for c in calls.values()] == [
        ("function", c.function.name, c.function.arguments) for c in expected]  # type: ignore[union-attr]
    assert all(c["id"].startswith("call_") and len(c["id"]) == 29 for c in calls.values())
    # The name comes first and once; the arguments arrive in several pieces.
    pieces = [tc for ch in chunks for c in ch.choices for tc in c.delta.tool_calls or ()]
    firsts = [p for p in pieces if p.id]
    assert [p.function.name for p in firsts] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert sum(1 for p in pieces if p.index == 0 and p.function and p.function.arguments) >= 3
    content = "".join(c.delta.content or "" for ch in chunks for c in ch.choices)
    assert content == "Let me check."
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_the_sdk_stream_helper_accumulates_the_same_calls(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(model="chat-a", messages=USER, tools=TOOLS) as s:  # type: ignore[arg-type]
        final = s.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", '{"city": "Paris", "unit": "C"}'), ("get_time", '{"tz": "Europe/Paris"}')]


def test_parallel_tool_calls_false_keeps_the_first_call(client: openai.OpenAI) -> None:
    r = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                       parallel_tool_calls=False)
    calls = r.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather"]  # type: ignore[union-attr]
    stream = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                            parallel_tool_calls=False, stream=True)
    assert [c["name"] for c in _reassemble(stream).values()] == ["get_weather"]


def test_tool_choice_none_leaves_tools_out(client: openai.OpenAI, backend: ScriptedBackend) -> None:
    r = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                       tool_choice="none")
    assert r.choices[0].message.content == "Hello world!"
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason == "stop"
    assert not backend.requests[-1].prompt.startswith("TOOLS:")


def test_required_tool_choice_is_guided_and_parsed(client: openai.OpenAI, backend: ScriptedBackend) -> None:
    r = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                       tool_choice="required", parallel_tool_calls=False)
    guide = backend.requests[-1].guide
    assert guide is not None and (guide.type, guide.param) == ("json_schema", "tool_choice")
    schema = json.loads(guide.text)
    assert (schema["type"], schema["minItems"], schema["maxItems"]) == ("array", 1, 1)
    assert [s["properties"]["name"]["const"] for s in schema["items"]["anyOf"]] == ["get_weather",
                                                                                  "get_time"]
    assert schema["items"]["anyOf"][0]["properties"]["arguments"] == TOOLS[0]["function"]["parameters"]
    calls = r.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", '{"city": "Paris"}')]
    assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None


def test_named_tool_choice_guides_the_arguments(client: openai.OpenAI, backend: ScriptedBackend) -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    r = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                       tool_choice=named)  # type: ignore[arg-type]
    guide = backend.requests[-1].guide
    assert guide is not None and json.loads(guide.text) == TOOLS[0]["function"]["parameters"]
    calls = r.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", '{"city": "Paris"}')]
    assert r.choices[0].finish_reason == "stop"  # as OpenAI answers a named tool_choice
    stream = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS,  # type: ignore[arg-type]
                                            tool_choice=named, stream=True)  # type: ignore[arg-type]
    assert [(c["name"], c["arguments"]) for c in _reassemble(stream).values()] == [
        ("get_weather", '{"city": "Paris"}')]


def test_a_tool_conversation_renders_calls_and_results(client: openai.OpenAI,
                                                      backend: ScriptedBackend) -> None:
    first = client.chat.completions.create(model="chat-a", messages=USER, tools=TOOLS)  # type: ignore[arg-type]
    call = (first.choices[0].message.tool_calls or [])[0]
    messages = [*USER, first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "21 C, sunny"}]
    client.chat.completions.create(model="chat-a", messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    prompt = backend.requests[-1].prompt
    assert ('<assistant>Let me check.CALLS:[{"id": "' + call.id + '", "type": "function", '
            '"function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}}') in prompt
    assert prompt.endswith(f"<tool>21 C, sunny[{call.id}:get_weather]")


BAD_TOOLS = [
    ({"tools": [{"type": "function", "function": {"name": "no spaces"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
     "tools[0].function.parameters"),
    ({"tools": [TOOLS[0], {"type": "custom", "custom": {"name": "c"}}]}, "tools[1].type"),
    ({"tools": [TOOLS[0], TOOLS[0]]}, "tools"),
    ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}},
     "response_format"),
    ({"tools": [{"type": "function"}]}, "tools[0].type"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function"),
    ({"response_format": {"type": "yaml"}}, "response_format.type"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
     "response_format.json_schema.name"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": 3}}},
     "response_format.json_schema.schema"),
    ({"logprobs": False, "top_logprobs": 3}, "top_logprobs"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": "x", "tool_calls": [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     "messages[0].tool_calls"),
]


@pytest.mark.parametrize(("fields", "param"), BAD_TOOLS)
def test_bad_tool_and_format_parameters_are_400s_naming_them(http: TestClient, fields: dict[str, Any],
                                                            param: str) -> None:
    r = http.post("/v1/chat/completions", json={"model": "chat-a", "messages": USER, **fields})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text


def test_a_model_without_a_tool_parser_refuses_tools(http: TestClient) -> None:
    r = http.post("/v1/chat/completions", json={"model": "plain", "messages": USER, "tools": TOOLS})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "Model 'plain' does not support tools", "type":
                                 "invalid_request_error", "param": "tools", "code": "unsupported_parameter"}
    ok = http.post("/v1/chat/completions", json={"model": "plain", "messages": USER, "tools": TOOLS,
                                                 "tool_choice": "none"})
    assert ok.status_code == 200


def test_response_format_becomes_a_guide(client: openai.OpenAI, backend: ScriptedBackend) -> None:
    r = client.chat.completions.create(model="chat-a", messages=USER,  # type: ignore[arg-type]
                                       response_format={"type": "json_object"})
    assert json.loads(r.choices[0].message.content or "") == {"ok": True}
    guide = backend.requests[-1].guide
    assert guide is not None and (guide.type, guide.text, guide.param) == ("json", "", "response_format")
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    r = client.chat.completions.create(model="chat-a", messages=USER, response_format={  # type: ignore[arg-type]
        "type": "json_schema", "json_schema": {"name": "Answer", "schema": schema, "strict": True}})
    guide = backend.requests[-1].guide
    assert guide is not None and (guide.type, json.loads(guide.text)) == ("json_schema", schema)
    assert r.choices[0].message.content == '{"answer": 42}'


def test_parse_with_a_pydantic_model(client: openai.OpenAI) -> None:
    from pydantic import BaseModel

    class Answer(BaseModel):
        answer: int

    r = client.chat.completions.parse(model="chat-a", messages=USER, response_format=Answer)  # type: ignore[arg-type]
    assert r.choices[0].message.parsed == Answer(answer=42)


def test_logprobs_non_streamed_and_streamed_agree(client: openai.OpenAI, backend: ScriptedBackend) -> None:
    r = client.chat.completions.create(model="chat-a", messages=USER, logprobs=True, top_logprobs=2)  # type: ignore[arg-type]
    assert (backend.requests[-1].logprobs, backend.requests[-1].top_logprobs) == (True, 2)
    content = r.choices[0].logprobs.content or []  # type: ignore[union-attr]
    assert [(t.token, t.logprob, t.bytes) for t in content] == [
        ("Hello w", -0.5, list(b"Hello w")), ("orld!", -1.0, list(b"orld!"))]
    assert [(a.token, a.logprob, a.bytes) for a in content[1].top_logprobs] == [
        ("orld!~0", -0.25, [*b"orld!", 0]), ("orld!~1", -0.5, [*b"orld!", 1])]
    chunks = list(client.chat.completions.create(model="chat-a", messages=USER, logprobs=True,  # type: ignore[arg-type]
                                                 top_logprobs=2, stream=True))
    streamed = [t for ch in chunks for c in ch.choices if c.logprobs for t in c.logprobs.content or ()]
    assert [t.model_dump() for t in streamed] == [t.model_dump() for t in content]
    plain = client.chat.completions.create(model="chat-a", messages=USER)  # type: ignore[arg-type]
    assert plain.choices[0].logprobs is None and backend.requests[-1].logprobs is False


def test_n_choices_run_with_their_own_seeds(client: openai.OpenAI, backend: ScriptedBackend) -> None:
    r = client.chat.completions.create(model="chat-a", messages=USER, n=3, seed=7)  # type: ignore[arg-type]
    assert [(c.index, c.message.content) for c in r.choices] == [
        (0, "seed 7!"), (1, "seed 8!"), (2, "seed 9!")]
    assert [g.seed for g in backend.requests[-3:]] == [7, 8, 9]
    assert r.usage is not None
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (5, 3)  # prompt once, 1 token each
    chunks = list(client.chat.completions.create(model="chat-a", messages=USER, n=3, seed=7,  # type: ignore[arg-type]
                                                 stream=True, stream_options={"include_usage": True}))
    assert [ch.choices[0].index for ch in chunks[:3]] == [0, 1, 2]
    assert all(ch.choices[0].delta.role == "assistant" for ch in chunks[:3])
    texts = {i: "".join(c.delta.content or "" for ch in chunks for c in ch.choices if c.index == i)
             for i in range(3)}
    assert texts == {0: "seed 7!", 1: "seed 8!", 2: "seed 9!"}
    finishes = [(c.index, c.finish_reason) for ch in chunks for c in ch.choices if c.finish_reason]
    assert sorted(finishes) == [(0, "stop"), (1, "stop"), (2, "stop")]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3


def test_n_seeds_wrap_at_the_int64_edge(client: openai.OpenAI, backend: ScriptedBackend) -> None:
    client.chat.completions.create(model="chat-a", messages=USER, n=2, seed=2**63 - 1)  # type: ignore[arg-type]
    assert [g.seed for g in backend.requests[-2:]] == [2**63 - 1, -(2**63)]
    assert len({g.request_id for g in backend.requests[-2:]}) == 2
