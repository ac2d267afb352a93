"""The gateway's chat suite against test doubles of NVIDIA's TensorRT-LLM models, through real Triton.

Every model must give the same OpenAI answers: ``echo`` (our delta contract), the
``tensorrt_llm_bls`` double (cumulative text, per-response token counts, stop word kept in the
text), its older interface (``random_seed``/``min_length``, no counts: the gateway counts with the
tokenizer), the LLM API double (``sampling_param_*``, cumulative text, no counts) and the
engine-path ensemble as ``build_engines`` writes it (per-token text from byte-level tokens, so
streamed pieces split UTF-8 characters and stop words).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import openai
import pytest

from gateway.backends.triton.server import TritonServer

WORDS = "alpha beta gamma delta epsilon zeta eta theta"
BYTES = "ensemble"  # byte-level tokens


def _words(text: str) -> list[str]:
    return text.split()


def _bytes(text: str) -> list[str]:
    return [chr(b) for b in text.encode()]  # one unit per UTF-8 byte


UNITS: dict[str, Callable[[str], list[str]]] = {
    "echo": _words, "trtllm-bls-mimic": _words, "trtllm-bls-legacy-mimic": _words,
    "trtllm-llmapi-mimic": _words, "trtllm-ensemble-mimic": _bytes,
}


@pytest.fixture(params=list(UNITS))
def model(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _ask(client: openai.OpenAI, model: str, content: str = WORDS, **kw: object):  # type: ignore[no-untyped-def]
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], **kw)  # type: ignore[call-overload]


def _stream_text(chunks: list) -> str:  # type: ignore[type-arg]
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_listed(client: openai.OpenAI) -> None:
    assert set(UNITS) <= {m.id for m in client.models.list().data}


def test_non_streaming_text_and_usage(client: openai.OpenAI, model: str) -> None:
    out = _ask(client, model)
    units = UNITS[model]
    assert out.choices[0].message.content == WORDS
    assert out.choices[0].finish_reason == "stop"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (len(units(WORDS)),) * 2


def test_streaming_deltas_rebuild_the_text(client: openai.OpenAI, model: str) -> None:
    chunks = list(_ask(client, model, stream=True, stream_options={"include_usage": True}))
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(deltas) == WORDS
    assert len(deltas) >= 4, "cumulative text must become several deltas, not one"
    assert chunks[-1].usage.completion_tokens == len(UNITS[model](WORDS))


def test_multibyte_text_survives_streaming(client: openai.OpenAI, model: str) -> None:
    text = "grüße ☃ 日本語 ok"
    chunks = list(_ask(client, model, content=text, stream=True, max_tokens=100))
    assert _stream_text(chunks) == text
    assert _ask(client, model, content=text, max_tokens=100).choices[0].message.content == text


def test_max_tokens_gives_length(client: openai.OpenAI, model: str) -> None:
    out = _ask(client, model, max_tokens=3)
    units = UNITS[model]
    assert out.choices[0].finish_reason == "length"
    assert out.usage.completion_tokens == 3
    assert units(out.choices[0].message.content) == units(WORDS)[:3]


@pytest.mark.parametrize("stream", [False, True])
def test_stop_sequence_is_cut_before_it(client: openai.OpenAI, model: str, stream: bool) -> None:
    if stream:
        chunks = list(_ask(client, model, stop=["delta"], stream=True))
        text = _stream_text(chunks)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        out = _ask(client, model, stop=["delta"])
        text, finish = out.choices[0].message.content, [out.choices[0].finish_reason]
    assert text == "alpha beta gamma "
    assert finish == ["stop"]


def test_multi_turn_reaches_the_model(client: openai.OpenAI, model: str) -> None:
    out = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "one"}, {"role": "user", "content": "two"},
        {"role": "assistant", "content": "three"}, {"role": "user", "content": "four"}])
    assert out.choices[0].message.content == "one two three four"


def _inputs_logged(triton: TritonServer, model: str, before: int) -> set[str]:
    lines = triton.log_path.read_text().splitlines()[before:]
    found = [ln.split("inputs=", 1)[1] for ln in lines if f"trtllm_mimic[{model}] inputs=" in ln]
    assert found, f"{model} logged no request"
    return set(found[-1].strip().split(","))


@pytest.mark.parametrize(("model_id", "triton_model", "expected", "absent"), [
    ("trtllm-bls-mimic", "tensorrt_llm_bls",
     {"seed", "min_tokens", "stream", "return_num_input_tokens", "exclude_input_in_output"},
     {"random_seed", "min_length"}),
    ("trtllm-bls-legacy-mimic", "tensorrt_llm_bls_legacy", {"random_seed", "min_length", "stream"},
     {"seed", "min_tokens", "return_num_input_tokens", "exclude_input_in_output"}),
    ("trtllm-llmapi-mimic", "trtllm_llmapi_mimic",
     {"sampling_param_seed", "sampling_param_max_tokens", "sampling_param_temperature", "streaming",
      "return_finish_reason"}, {"max_tokens", "seed", "stream", "sampling_param_stop"}),
])
def test_sampling_inputs_use_each_models_names(client: openai.OpenAI, triton: TritonServer, model_id: str,
                                               triton_model: str, expected: set[str], absent: set[str]) -> None:
    before = len(triton.log_path.read_text().splitlines())
    out = _ask(client, model_id, seed=7, temperature=0.5, extra_body={"min_tokens": 1}, stop=["zzz"])
    assert out.choices[0].message.content == WORDS
    names = _inputs_logged(triton, triton_model, before)
    assert expected <= names and not (absent & names)


# Only the LLM API model stops generating: Triton checks an ensemble's cancellation between steps
# (the running tensorrt_llm step goes on), and NVIDIA's BLS never checks it (docs/gpu.md).
@pytest.mark.parametrize(("model_id", "marker"), [
    ("trtllm-llmapi-mimic", "trtllm_mimic[trtllm_llmapi_mimic]: request cancelled"),
])
async def test_disconnect_cancels(aclient: openai.AsyncOpenAI, triton: TritonServer, model_id: str,
                                  marker: str) -> None:
    before = triton.log_path.read_text().count(marker)
    words = " ".join(f"w{i}" for i in range(300))
    stream = await aclient.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": words}], stream=True, max_tokens=300)
    async for _chunk in stream:
        break
    await stream.close()
    for _ in range(100):
        if triton.log_path.read_text().count(marker) > before:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"{model_id} never saw the cancellation")
