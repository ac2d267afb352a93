"""POST /v1/responses on the real stack (Triton on CPU) with the stock openai SDK: the CPU chat model,
the vision model, the echo model and the TensorRT-LLM doubles; stored responses and
previous_response_id; every body and every streamed event checked against OpenAI's schemas."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pydantic
import pytest

from gateway.triton.server import TritonServer
from tests.e2e.conftest import CHAT_MODEL
from tests.images import data_uri, make_image
from tests.models.trtllm import byte_fallback_tokens
from tests.spec import validate
from tests.support import GatewayProcess

pytestmark = pytest.mark.e2e

WORDS = "alpha beta gamma delta epsilon zeta eta theta"
VISION_MODEL = "tiny-llava-random"
PER_IMAGE = 16  # the vision model's image tokens: 64x64 pixels in 16x16 patches
# Each model's tokens, as the doubles count them (test_contracts.py runs the chat suite on them).
UNITS: dict[str, Callable[[str], list[str]]] = {
    "echo": str.split, "trtllm-bls-mimic": byte_fallback_tokens,
    "trtllm-bls-legacy-mimic": byte_fallback_tokens, "trtllm-llmapi-mimic": byte_fallback_tokens,
    "trtllm-ensemble-mimic": byte_fallback_tokens,
}
@pytest.fixture(scope="module")
def stored(triton: TritonServer, stack_dir: Path,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway of its own with stored responses on."""
    proc = GatewayProcess(triton.grpc_url, stack_dir / "registry.toml",
                          tmp_path_factory.mktemp("responses-gateway"),
                          env={"CHUNGUS_RESPONSES_STORE": "true"})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def sdk(stored: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=stored.base_url + "/v1", api_key=stored.admin_key,
                         max_retries=0, timeout=120)


def _raw(gateway: GatewayProcess, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(gateway.base_url + "/v1/responses", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {gateway.admin_key}"})


def _events(body: bytes) -> list[dict[str, Any]]:
    events = []
    for block in body.decode().split("\n\n")[:-1]:
        head, data = block.split("\n")
        event = json.loads(data.removeprefix("data: "))
        assert head == f"event: {event['type']}"
        validate("ResponseStreamEvent", event)
        events.append(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def test_cpu_model_json_and_stream_agree(stored: GatewayProcess) -> None:
    body = {"model": CHAT_MODEL, "input": "Name three colors.", "instructions": "Answer briefly.",
            "max_output_tokens": 12, "temperature": 0}
    r = _raw(stored, body)
    assert r.status_code == 200, r.text
    response = r.json()
    validate("Response", response)
    text = response["output"][0]["content"][0]["text"]
    assert text
    usage = response["usage"]
    assert usage["input_tokens"] > 5 and 0 < usage["output_tokens"] <= 12
    if response["status"] == "incomplete":
        assert usage["output_tokens"] == 12
        assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    events = _events(_raw(stored, {**body, "stream": True}).content)
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    final = events[-1]["response"]
    assert deltas == text, "greedy decoding alone reproduces exactly"
    assert final["output"][0]["content"][0]["text"] == text
    assert final["usage"]["input_tokens"] == usage["input_tokens"]
    assert events[-1]["type"] == f"response.{response['status']}"


def test_sdk_create_and_stream(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model=CHAT_MODEL, input="Say hello.", max_output_tokens=8)
    assert response.status in ("completed", "incomplete") and response.output_text
    events = list(sdk.responses.create(model=CHAT_MODEL, input="Say hello.", max_output_tokens=8,
                                       stream=True))
    last = events[-1]
    assert last.type in ("response.completed", "response.incomplete")
    assert last.response.output_text  # type: ignore[union-attr]
    # The SDK's stream helper (it waits for response.completed), on a model that completes.
    with sdk.responses.stream(model="echo", input=WORDS) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == WORDS


@pytest.mark.parametrize("model", list(UNITS))
def test_trtllm_doubles_answer_alike(stored: GatewayProcess, sdk: openai.OpenAI, model: str) -> None:
    response = sdk.responses.create(model=model, input=WORDS)
    assert response.output_text == WORDS
    assert response.usage is not None
    count = len(UNITS[model](WORDS))
    assert (response.usage.input_tokens, response.usage.output_tokens) == (count, count)
    events = _events(_raw(stored, {"model": model, "input": WORDS, "stream": True}).content)
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == WORDS
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["output_tokens"] == count


def test_previous_response_id_and_retrieve(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(model="echo", input="alpha beta", instructions="sys")
    assert first.output_text == "sys alpha beta"
    second = sdk.responses.create(model="echo", input="gamma", previous_response_id=first.id)
    # Earlier instructions are not carried over; the earlier input and output are.
    assert second.output_text == "alpha beta sys alpha beta gamma"
    assert sdk.responses.retrieve(second.id).output_text == second.output_text
    sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.create(model="echo", input="x", previous_response_id=first.id)


def test_image_input(sdk: openai.OpenAI) -> None:
    response = sdk.responses.create(model=VISION_MODEL, max_output_tokens=6, input=[{
        "role": "user", "content": [
            {"type": "input_text", "text": "What is in this image?"},
            {"type": "input_image", "image_url": data_uri(make_image("PNG")), "detail": "auto"}]}])
    assert response.status in ("completed", "incomplete")
    assert response.usage is not None and response.usage.input_tokens > PER_IMAGE


def test_refusals(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.responses.create(model=CHAT_MODEL, input="x", tools=[{"type": "web_search"}])
    assert exc.value.body["param"] == "tools[0].type"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.responses.create(model=CHAT_MODEL, input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": data_uri(make_image("PNG"))}]}])
    assert exc.value.body["param"] == "input"  # type: ignore[index]


class Color(pydantic.BaseModel):
    name: str
    hex: str


def test_parse_with_a_pydantic_model(sdk: openai.OpenAI) -> None:
    parsed = sdk.responses.parse(model=CHAT_MODEL, input="Give one color as JSON.",
                                 text_format=Color, max_output_tokens=64, temperature=0)
    assert parsed.status == "completed"
    assert isinstance(parsed.output_parsed, Color)


WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"], "additionalProperties": False}, "strict": True}


def test_function_call_round_trip(sdk: openai.OpenAI) -> None:
    first = sdk.responses.create(model=CHAT_MODEL, input="What is the weather in Paris?",
                                 tools=[WEATHER], tool_choice="required", max_output_tokens=64,
                                 temperature=0)
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    second = sdk.responses.create(
        model=CHAT_MODEL, tools=[WEATHER], max_output_tokens=16, input=[
            {"role": "user", "content": "What is the weather in Paris?"},
            {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather",
             "arguments": calls[0].arguments},
            {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C, sunny"}])
    assert second.status in ("completed", "incomplete")
    assert second.usage is not None and second.usage.input_tokens > first.usage.input_tokens  # type: ignore[union-attr]


def _fed_back(sdk: openai.OpenAI, output: str) -> int:
    response = sdk.responses.create(model=CHAT_MODEL, tools=[WEATHER], max_output_tokens=4,  # type: ignore[list-item]
                                    temperature=0, input=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": output}])
    assert response.status in ("completed", "incomplete")
    assert response.usage is not None
    return response.usage.input_tokens


def test_function_call_output_reaches_the_template(sdk: openai.OpenAI) -> None:
    """The second half of a round trip, which needs no guide: the call and its output are
    rendered by the model's tools-aware template, so a longer output is a longer prompt."""
    short, long = _fed_back(sdk, "18C"), _fed_back(sdk, "18C, sunny, light wind from the west")
    assert long > short + 5


JS_STREAM = """
import OpenAI from "openai";
const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY });
const stream = await client.responses.create({ model: "echo", input: "hello from node", stream: true });
const types = [];
let text = "";
for await (const event of stream) {
  types.push(event.type);
  if (event.type === "response.output_text.delta") text += event.delta;
}
const done = await client.responses.create({ model: "echo", input: "hello again" });
console.log(JSON.stringify({ types, text, output_text: done.output_text }));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_javascript_sdk(stored: GatewayProcess) -> None:
    js = Path(__file__).resolve().parent.parent / "js"
    if not (js / "node_modules" / "openai").exists():
        pytest.skip("tests/js/node_modules missing: run `make install` (npm install)")
    out = subprocess.run(["node", "--input-type=module", "-e", JS_STREAM], capture_output=True,
                         text=True, timeout=60, cwd=js,
                         env={"BASE_URL": stored.base_url + "/v1", "API_KEY": stored.admin_key,
                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["text"] == "hello from node"
    assert result["output_text"] == "hello again"
    assert result["types"][:2] == ["response.created", "response.in_progress"]
    assert result["types"][-1] == "response.completed"


def test_logprobs(stored: GatewayProcess) -> None:
    body = {"model": CHAT_MODEL, "input": "Count: one, two,", "max_output_tokens": 5,
            "temperature": 0, "top_logprobs": 2}
    response = _raw(stored, body).json()
    validate("Response", response)
    part = response["output"][0]["content"][0]
    logprobs = part["logprobs"]
    assert len(logprobs) == response["usage"]["output_tokens"]
    assert "".join(lp["token"] for lp in logprobs) == part["text"]
    for lp in logprobs:
        assert lp["logprob"] <= 0 and bytes(lp["bytes"]).decode(errors="replace")
        assert 1 <= len(lp["top_logprobs"]) <= 2
        assert lp["top_logprobs"][0]["logprob"] >= lp["logprob"] - 1e-4  # greedy: the likeliest
    events = _events(_raw(stored, {**body, "stream": True}).content)
    streamed = [lp for e in events if e["type"] == "response.output_text.delta" for lp in e["logprobs"]]
    assert [lp["token"] for lp in streamed] == [lp["token"] for lp in logprobs]


def test_a_schema_the_backend_cannot_enforce_is_refused_by_name(sdk: openai.OpenAI) -> None:
    """TensorRT-LLM's LLM API model has no guided-decoding or log-prob input: 400s naming the
    Responses parameter that asked for it."""
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.responses.parse(model="trtllm-llmapi-mimic", input=WORDS, text_format=Color)
    assert exc.value.body["param"] == "text.format"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.responses.create(model="trtllm-llmapi-mimic", input=WORDS, top_logprobs=1)
    assert exc.value.body["param"] == "top_logprobs"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as exc:
        sdk.responses.create(model="trtllm-llmapi-mimic", input=WORDS,
                             include=["message.output_text.logprobs"])
    assert exc.value.body["param"] == "include"  # type: ignore[index]
