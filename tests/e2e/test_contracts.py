"""The gateway's chat suite against test doubles of NVIDIA's TensorRT-LLM models (BLS with cumulative
text and token counts; LLM API with sampling_param_* names, cumulative text, finish_reason and no
counts) and our own delta-streaming echo model: the same OpenAI answers from every contract."""

from __future__ import annotations

import asyncio

import openai
import pytest

from gateway.backends.triton.server import TritonServer

MODELS = ["echo", "trtllm-bls-mimic", "trtllm-llmapi-mimic"]
WORDS = "alpha beta gamma delta epsilon zeta eta theta"


@pytest.fixture(params=MODELS)
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _ask(client: openai.OpenAI, model: str, **kw: object):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": WORDS}], **kw)  # type: ignore[call-overload]


def test_listed(client: openai.OpenAI) -> None:
    assert set(MODELS) <= {m.id for m in client.models.list().data}


def test_non_streaming_text_and_usage(client: openai.OpenAI, model: str) -> None:
    out = _ask(client, model)
    assert out.choices[0].message.content == WORDS
    assert out.choices[0].finish_reason == "stop"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (8, 8)


def test_streaming_deltas_rebuild_the_text(client: openai.OpenAI, model: str) -> None:
    chunks = list(_ask(client, model, stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == WORDS
    assert len(deltas) >= 4, "cumulative text must become several deltas, not one"
    assert chunks[-1].usage.completion_tokens == 8


def test_max_tokens_gives_length(client: openai.OpenAI, model: str) -> None:
    out = _ask(client, model, max_tokens=3)
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 3
    assert out.choices[0].message.content.split() == WORDS.split()[:3]


def test_stop_sequence(client: openai.OpenAI, model: str) -> None:
    if model == "echo":
        pytest.skip("the echo model does not implement stop words")
    out = _ask(client, model, stop=["delta"])
    assert "delta" not in out.choices[0].message.content
    assert out.choices[0].message.content.startswith("alpha beta gamma")


def test_multi_turn_reaches_the_model(client: openai.OpenAI, model: str) -> None:
    out = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "one"}, {"role": "user", "content": "two"},
        {"role": "assistant", "content": "three"}, {"role": "user", "content": "four"}])
    assert out.choices[0].message.content == "one two three four"


async def test_disconnect_cancels(aclient: openai.AsyncOpenAI, triton: TritonServer) -> None:
    marker = "trtllm_mimic: request cancelled"
    before = triton.log_path.read_text().count(marker)
    words = " ".join(f"w{i}" for i in range(300))
    stream = await aclient.chat.completions.create(
        model="trtllm-llmapi-mimic", messages=[{"role": "user", "content": words}], stream=True,
        max_tokens=300)
    async for _chunk in stream:
        break
    await stream.close()
    for _ in range(100):
        if triton.log_path.read_text().count(marker) > before:
            return
        await asyncio.sleep(0.1)
    pytest.fail("the LLM API double never saw the cancellation")
