"""The gateway's chat suite against test doubles of NVIDIA's TensorRT-LLM models, through real Triton.

Every model must give the same OpenAI answers: ``echo`` (our delta contract), the
``tensorrt_llm_bls`` double (cumulative text, per-response token counts, stop word kept in the
text), its older interface (``random_seed``/``min_length``, no counts: the gateway counts with the
tokenizer), the LLM API double (``sampling_param_*``, cumulative text, no counts) and the
engine-path ensemble as ``build_engines`` writes it (per-token text).

The doubles tokenize with a real byte-fallback tokenizer (one token per ASCII character, one per
UTF-8 byte otherwise) and decode as NVIDIA's postprocessing does: the cumulative text of the BLS
and the LLM API first ends in U+FFFD when a character is split across tokens, then the character
("Caf\ufffd" -> "Café"), and the gateway must still stream "Café" once. On the ensemble path each
streamed response is decoded alone, so a split character reaches the client as U+FFFD per byte,
as it does with NVIDIA's ensemble (docs/gpu.md); non-streaming answers are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import openai
import pytest
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput

from gateway.triton.server import TritonServer
from tests.models.trtllm import MAX_INPUT_LEN, MAX_SEQ_LEN, byte_fallback_ids, byte_fallback_tokens, mimic_logprob

WORDS = "alpha beta gamma delta epsilon zeta eta theta"
BYTES = "ensemble"  # byte-level tokens


def _words(text: str) -> list[str]:
    return text.split()


UNITS: dict[str, Callable[[str], list[str]]] = {
    "echo": _words, "trtllm-bls-mimic": byte_fallback_tokens, "trtllm-bls-legacy-mimic": byte_fallback_tokens,
    "trtllm-llmapi-mimic": byte_fallback_tokens, "trtllm-ensemble-mimic": byte_fallback_tokens,
}


def _per_token(text: str) -> str:
    """What NVIDIA's ensemble streams: each token decoded alone (U+FFFD per byte of a split character)."""
    return "".join(c if len(c.encode()) == 1 else "\ufffd" * len(c.encode()) for c in text)


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
    """Fault 2: cumulative "Caf\ufffd" then "Café" must stream as "Café", never "Caf\ufffdCafé"."""
    text = "Café grüße ☃ 日本語 ok"
    chunks = list(_ask(client, model, content=text, stream=True, max_tokens=100))
    streamed = _per_token(text) if model == "trtllm-ensemble-mimic" else text  # fault 6: NVIDIA's ensemble
    assert _stream_text(chunks) == streamed
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


def _tensor(name: str, value: object, dtype: str, batched: bool = True) -> InferInput:
    np_type = {"BYTES": np.object_, "INT32": np.int32, "BOOL": np.bool_}[dtype]
    array = np.array([[value]] if batched else [value], dtype=np_type)  # LLM API model: max_batch_size 0
    tensor = InferInput(name, list(array.shape), dtype)
    tensor.set_data_from_numpy(array)
    return tensor


async def _errors(url: str, model: str, inputs: list[InferInput]) -> list[str]:
    client = grpcclient.InferenceServerClient(url)

    async def requests():  # type: ignore[no-untyped-def]
        yield {"model_name": model, "inputs": inputs}

    found = []
    try:
        async for _result, error in client.stream_infer(requests()):
            if error is not None:
                found.append(str(error))
                break
    finally:
        await client.close()
    return found


@pytest.mark.parametrize("triton_model", ["tensorrt_llm_bls", "ensemble"])
async def test_a_prompt_over_the_engines_input_limit_is_rejected(triton: TritonServer, triton_model: str) -> None:
    """As the C++ executor does: prompt length > max_input_len is an error, not a truncation."""
    prompt = "x" * (MAX_INPUT_LEN + 1)  # one token per character
    errors = await _errors(triton.grpc_url, triton_model, [
        _tensor("text_input", prompt.encode(), "BYTES"), _tensor("max_tokens", 4, "INT32"),
        _tensor("stream", True, "BOOL")])
    assert len(errors) == 1
    assert f"Prompt length ({MAX_INPUT_LEN + 1}) exceeds maximum input length ({MAX_INPUT_LEN})" in errors[0]


async def test_the_llmapi_model_rejects_prompt_plus_max_tokens_over_max_seq_len(triton: TritonServer) -> None:
    prompt = "x" * (MAX_SEQ_LEN - 100)
    errors = await _errors(triton.grpc_url, "trtllm_llmapi_mimic", [
        _tensor("text_input", prompt.encode(), "BYTES", batched=False),
        _tensor("sampling_param_max_tokens", 101, "INT32", batched=False)])
    assert errors and f"({MAX_SEQ_LEN - 100}) and max_tokens (101) should not exceed max_seq_len ({MAX_SEQ_LEN})" \
        in errors[0]


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
    # The LLM API model has no min_tokens input: it is refused there (test below), not dropped.
    extra = {} if "llmapi" in model_id else {"min_tokens": 1}
    out = _ask(client, model_id, seed=7, temperature=0.5, extra_body=extra, stop=["zzz"])
    assert out.choices[0].message.content == WORDS
    names = _inputs_logged(triton, triton_model, before)
    assert expected <= names and not (absent & names)


@pytest.mark.parametrize("field", ["min_tokens", "repetition_penalty"])
def test_the_llm_api_model_refuses_what_it_has_no_input_for(client: openai.OpenAI, field: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        _ask(client, "trtllm-llmapi-mimic", extra_body={field: 2})
    error = info.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == (field, "unsupported_parameter")


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


# ---- guided decoding and log-probabilities on NVIDIA's interfaces ------------------------------

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"],
          "additionalProperties": False}


def _guides_logged(triton: TritonServer, marker: str, before: int) -> list[str]:
    """What the doubles logged after ``marker guide=`` (Triton logs a message as a JSON string)."""
    import json

    lines = triton.log_path.read_text().splitlines()[before:]
    messages = [json.loads(ln[ln.index('"'):]) for ln in lines if f"{marker} guide=" in ln]
    return [m.split(f"{marker} guide=", 1)[1] for m in messages]


@pytest.mark.parametrize(("model_id", "marker"), [
    ("trtllm-bls-mimic", "trtllm_mimic[tensorrt_llm_bls]"),
    ("trtllm-ensemble-mimic", "trtllm_core_mimic"),
])
@pytest.mark.parametrize(("response_format", "kind"), [
    ({"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}}, "json_schema"),
    ({"type": "json_object"}, "json"),
])
def test_a_response_format_reaches_the_engine_as_nvidias_guide(
        client: openai.OpenAI, triton: TritonServer, model_id: str, marker: str,
        response_format: dict[str, object], kind: str) -> None:
    import contextlib
    import json

    before = len(triton.log_path.read_text().splitlines())
    # The echo is not constrained: what the gateway makes of it is not the point here.
    with contextlib.suppress(openai.APIStatusError):
        _ask(client, model_id, content='{"a": 1}', response_format=response_format)
    logged = _guides_logged(triton, marker, before)
    assert len(logged) == 1, logged
    got_kind, guide = logged[0].split(":", 1)
    assert got_kind == kind
    assert (json.loads(guide) if kind == "json_schema" else guide) == (SCHEMA if kind == "json_schema" else "")


@pytest.mark.parametrize("model_id", ["trtllm-bls-mimic", "trtllm-ensemble-mimic"])
@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_come_from_nvidias_output_log_probs(client: openai.OpenAI, model_id: str, stream: bool) -> None:
    content = "alpha beta"
    expected = [mimic_logprob(t) for t in byte_fallback_ids(content)]
    out = _ask(client, model_id, content=content, logprobs=True, stream=stream)
    if stream:
        tokens = [t for c in out if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content or []]
    else:
        tokens = out.choices[0].logprobs.content
    assert [t.logprob for t in tokens] == pytest.approx(expected)
    assert "".join(t.token for t in tokens) == content


@pytest.mark.parametrize(("model_id", "kw", "param"), [
    ("trtllm-bls-mimic", {"logprobs": True, "top_logprobs": 2}, "top_logprobs"),
    ("trtllm-ensemble-mimic", {"logprobs": True, "top_logprobs": 1}, "top_logprobs"),
    ("trtllm-llmapi-mimic", {"logprobs": True}, "logprobs"),
    ("trtllm-llmapi-mimic", {"response_format": {"type": "json_object"}}, "response_format"),
    ("trtllm-bls-legacy-mimic", {"response_format": {"type": "json_object"}}, "response_format"),
])
def test_what_nvidias_models_cannot_do_is_refused_naming_the_parameter(
        client: openai.OpenAI, model_id: str, kw: dict[str, object], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        _ask(client, model_id, **kw)
    error = info.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == (param, "unsupported_parameter")
