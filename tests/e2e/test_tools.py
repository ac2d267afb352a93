"""Tool calls through the whole stack (Triton on CPU, SmolLM2 with its tools-aware template) with
the stock openai SDK. Forced calls (named or required ``tool_choice``) run under the engine's
constrained decoding, so they parse whatever the small model would write; ``auto`` parses what
the model writes (its rate is measured by bench/tool_parse_rate.py, not asserted)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.e2e.conftest import CHAT_MODEL
from tests.support import GatewayProcess

pytestmark = pytest.mark.e2e

TOOLS: list[dict[str, Any]] = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
                       "required": ["city"], "additionalProperties": False}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Get the local time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}},
                       "required": ["city"], "additionalProperties": False}}},
]
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
WEATHER = {"type": "function", "function": {"name": "get_weather"}}


def _args(arguments: str) -> dict[str, Any]:
    value = json.loads(arguments)
    assert isinstance(value, dict) and isinstance(value.get("city"), str), arguments
    assert set(value) == {"city"}
    return value


def test_two_turn_tool_conversation(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=CHAT_MODEL, messages=ASK, tools=TOOLS,  # type: ignore[arg-type]
                                           tool_choice=WEATHER, temperature=0, max_tokens=40)  # type: ignore[arg-type]
    choice = first.choices[0]
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    _args(calls[0].function.arguments)  # type: ignore[union-attr]
    assert choice.message.content is None and choice.finish_reason == "stop"
    history = [*ASK, choice.message.model_dump(exclude_none=True),
               {"role": "tool", "tool_call_id": calls[0].id,
                "content": json.dumps({"city": "Paris", "temperature_c": 21, "sky": "sunny"})}]
    final = client.chat.completions.create(model=CHAT_MODEL, messages=history, tools=TOOLS,  # type: ignore[arg-type]
                                           tool_choice="none", temperature=0, max_tokens=40)
    answer = final.choices[0]
    assert answer.message.tool_calls is None and answer.finish_reason in ("stop", "length")
    assert answer.message.content and answer.message.content.strip()
    alone = client.chat.completions.create(model=CHAT_MODEL, messages=ASK, max_tokens=1)
    # The call and its result are in the prompt (tool_choice none leaves the tool list out).
    assert final.usage is not None and alone.usage is not None
    assert final.usage.prompt_tokens > alone.usage.prompt_tokens + 20


def test_streamed_tool_call_deltas_equal_the_non_streamed_call(client: openai.OpenAI) -> None:
    args: dict[str, Any] = {"model": CHAT_MODEL, "messages": ASK, "tools": TOOLS, "tool_choice": "required",
                            "parallel_tool_calls": False, "temperature": 0, "max_tokens": 48}
    whole = client.chat.completions.create(**args)
    calls = whole.choices[0].message.tool_calls or []
    assert len(calls) == 1 and whole.choices[0].finish_reason == "tool_calls"
    pieces: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in client.chat.completions.create(**args, stream=True):
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for tc in c.delta.tool_calls or ():
                got = pieces.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                got["id"] += tc.id or ""
                got["name"] += (tc.function.name or "") if tc.function else ""
                got["arguments"] += (tc.function.arguments or "") if tc.function else ""
    assert [(p["name"], p["arguments"]) for p in pieces.values()] == [
        (c.function.name, c.function.arguments) for c in calls]  # type: ignore[union-attr]
    assert pieces[0]["id"].startswith("call_") and finish == "tool_calls"
    assert calls[0].function.name in ("get_weather", "get_time")  # type: ignore[union-attr]
    _args(calls[0].function.arguments)  # type: ignore[union-attr]


def test_required_calls_with_parallel_calls_all_parse(client: openai.OpenAI) -> None:
    both = [{"role": "user", "content": "What are the weather and the local time in Rome?"}]
    out = client.chat.completions.create(model=CHAT_MODEL, messages=both, tools=TOOLS,  # type: ignore[arg-type]
                                         tool_choice="required", temperature=0, max_tokens=96)
    calls = out.choices[0].message.tool_calls or []
    assert calls and out.choices[0].finish_reason == "tool_calls"
    assert len({c.id for c in calls}) == len(calls)
    for call in calls:
        assert call.function.name in ("get_weather", "get_time")  # type: ignore[union-attr]
        _args(call.function.arguments)  # type: ignore[union-attr]


def test_auto_answers_with_calls_or_text(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model=CHAT_MODEL, messages=ASK, tools=TOOLS,  # type: ignore[arg-type]
                                         temperature=0, max_tokens=48)
    choice = out.choices[0]
    if choice.message.tool_calls:
        assert choice.finish_reason == "tool_calls"
        for call in choice.message.tool_calls:
            assert call.function.name in ("get_weather", "get_time")  # type: ignore[union-attr]
    else:
        assert choice.message.content and choice.finish_reason in ("stop", "length")


def test_models_say_the_chat_model_takes_tools(client: openai.OpenAI) -> None:
    model = client.models.retrieve(CHAT_MODEL).model_dump()
    assert model["capabilities"] == {"tools": True, "structured_outputs": True, "logprobs": True,
                                     "vision": False}


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_sdk_tools_structured_outputs_and_completions(gateway: GatewayProcess) -> None:
    """The stock Node SDK: a named tool call streamed and not (the same call), a strict
    json_schema answer that validates, a legacy completion streamed and not (the same text)."""
    js = Path(__file__).resolve().parent.parent / "js"
    if not (js / "node_modules" / "openai").exists():
        pytest.skip("tests/js/node_modules missing: run `make install` (npm install)")
    out = subprocess.run(["node", str(js / "surface.mjs")], capture_output=True, text=True,
                         timeout=300, env={"BASE_URL": gateway.base_url + "/v1",
                                           "API_KEY": gateway.admin_key, "MODEL": CHAT_MODEL,
                                           "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    # A named tool_choice ends with "stop" as OpenAI's does; the call is the whole message.
    assert result["tool"]["finish"] == "stop" and result["tool"]["content"] is None
    [call] = result["tool"]["calls"]
    assert call["type"] == "function" and call["function"]["name"] == "get_weather"
    assert call["id"].startswith("call_")
    [streamed] = result["streamed"]["calls"]
    assert result["streamed"]["finish"] == "stop"
    assert streamed["name"] == "get_weather" and streamed["id"].startswith("call_")
    assert _args(streamed["arguments"]) == _args(call["function"]["arguments"])
    verdict = json.loads(result["verdict"])
    assert set(verdict) == {"answer"} and isinstance(verdict["answer"], bool)
    completion = result["completion"]
    assert completion["text"] and completion["text"] == completion["streamed"]
    assert completion["usage"]["completion_tokens"] >= 1
    assert completion["usage"]["total_tokens"] == (completion["usage"]["prompt_tokens"]
                                                   + completion["usage"]["completion_tokens"])
