"""POST /v1/completions through the whole stack with the stock openai SDK: the CPU reference model
(and the echo test model, which answers with the prompt it got, word by word)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from tokenizers import Tokenizer

from tests.e2e.conftest import CHAT_MODEL
from tests.spec import errors, validate
from tests.support import GatewayProcess

PROMPT = "The capital city of France is"


def _raw(gateway: GatewayProcess, **body: Any) -> httpx.Response:
    return httpx.post(gateway.base_url + "/v1/completions", json=body, timeout=120,
                      headers={"Authorization": f"Bearer {gateway.admin_key}"})


def _validate_chunk(chunk: dict[str, Any]) -> None:
    """OpenAI's schema, but for ``finish_reason: null`` before a choice's last chunk (OpenAI's own
    streams send it; the schema's enum lacks null)."""
    found = [e for e in errors("CreateCompletionResponse", chunk)
             if not re.fullmatch(r"choices/\d+/finish_reason: None is not (of type 'string'|one of .*)", e)]
    assert not found, found


def test_non_streaming_completion(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    out = client.completions.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
    assert out.object == "text_completion" and out.id.startswith("cmpl-")
    assert out.model == CHAT_MODEL
    choice = out.choices[0]
    assert choice.index == 0 and choice.text.strip() and choice.logprobs is None
    assert choice.finish_reason in ("stop", "length")
    assert out.usage is not None and out.usage.prompt_tokens == 6  # the model's own count, no template
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    for _ in range(3):  # greedy, alone: alike in one of three runs (two may differ: docs/benchmarks.md)
        raw = _raw(gateway, model=CHAT_MODEL, prompt=PROMPT, max_tokens=8, temperature=0)
        validate("CreateCompletionResponse", raw.json())
        if raw.json()["choices"][0]["text"] == choice.text:
            break
    assert raw.json()["choices"][0]["text"] == choice.text


def test_default_max_tokens_is_openais_16(client: openai.OpenAI) -> None:
    out = client.completions.create(model=CHAT_MODEL, prompt="Count: one, two, three, four,", temperature=0)
    assert out.usage is not None and out.usage.completion_tokens <= 16
    assert out.choices[0].finish_reason == "length" or out.usage.completion_tokens < 16


def test_streaming_matches_non_streaming_and_reports_usage(client: openai.OpenAI,
                                                           gateway: GatewayProcess) -> None:
    whole = client.completions.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=12, temperature=0)
    chunks = list(client.completions.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert whole.usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    raw = _raw(gateway, model=CHAT_MODEL, prompt=PROMPT, max_tokens=12, temperature=0, stream=True)
    events = raw.content.split(b"\n\n")
    assert events[-2:] == [b"data: [DONE]", b""]
    for event in events[:-2]:
        _validate_chunk(json.loads(event[len(b"data: "):]))


def test_echo_prepends_the_prompt(client: openai.OpenAI) -> None:
    plain = client.completions.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=5, temperature=0)
    echoed = client.completions.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=5, temperature=0, echo=True)
    assert echoed.choices[0].text == PROMPT + plain.choices[0].text
    streamed = list(client.completions.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=5, temperature=0,
                                              echo=True, stream=True))
    assert streamed[0].choices[0].text.startswith(PROMPT)
    assert "".join(c.choices[0].text for c in streamed) == echoed.choices[0].text


def test_the_prompt_reaches_the_model_as_it_is(client: openai.OpenAI) -> None:
    prompt = "<|im_start|>user  two  spaces\nand a line"
    out = client.completions.create(model="echo", prompt=prompt, max_tokens=64)
    assert out.choices[0].text == prompt  # the echo model answers with what it received


def test_n_choices_run_together_and_usage_sums_them(client: openai.OpenAI) -> None:
    out = client.completions.create(model=CHAT_MODEL, prompt="Once upon a time", max_tokens=6, n=2,
                                    temperature=1.0, seed=5)
    assert [c.index for c in out.choices] == [0, 1]
    assert all(c.text for c in out.choices)
    assert out.usage is not None and out.usage.prompt_tokens == 4  # counted once
    assert out.usage.completion_tokens == 12  # both ran to max_tokens (no EOS so early)
    chunks = list(client.completions.create(model=CHAT_MODEL, prompt="Once upon a time", max_tokens=6, n=2,
                                            stream=True))
    assert sorted(c.choices[0].index for c in chunks if c.choices[0].finish_reason) == [0, 1]


def test_a_list_of_prompts_times_n_in_openais_order(client: openai.OpenAI) -> None:
    out = client.completions.create(model="echo", prompt=["one two", "three"], n=2, max_tokens=8)
    assert [(c.index, c.text) for c in out.choices] == [(0, "one two"), (1, "one two"), (2, "three"), (3, "three")]
    assert out.usage is not None and out.usage.completion_tokens == 6
    real = client.completions.create(model=CHAT_MODEL, prompt=[PROMPT, "Hello, my name is"], max_tokens=4,
                                     temperature=0)
    assert [c.index for c in real.choices] == [0, 1] and all(c.text for c in real.choices)


def test_token_id_prompts_match_their_text(client: openai.OpenAI, stack_dir: Path) -> None:
    tok = Tokenizer.from_file(str(stack_dir / "models" / CHAT_MODEL / "tokenizer.json"))
    ids = tok.encode(PROMPT, add_special_tokens=False).ids
    by_text = client.completions.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=6, temperature=0)
    by_ids = client.completions.create(model=CHAT_MODEL, prompt=ids, max_tokens=6, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    assert by_ids.usage is not None and by_ids.usage.prompt_tokens == len(ids)
    several = client.completions.create(model=CHAT_MODEL, prompt=[ids, ids[:3]], max_tokens=2, temperature=0)
    assert len(several.choices) == 2
    with pytest.raises(openai.BadRequestError) as info:  # the echo model has no tokenizer here
        client.completions.create(model="echo", prompt=[1, 2, 3])
    assert info.value.body["param"] == "prompt"  # type: ignore[index]


def test_greedy_and_seeded_requests_reproduce(client: openai.OpenAI) -> None:
    def ask(**kw: Any) -> str:
        out = client.completions.create(model=CHAT_MODEL, prompt="Tell me a story:", max_tokens=16, **kw)
        return out.choices[0].text

    assert ask(temperature=0) == ask(temperature=0)
    assert ask(temperature=0, seed=3) == ask(temperature=0, seed=4)  # greedy: the seed does not matter
    assert ask(temperature=1.0, seed=11) == ask(temperature=1.0, seed=11)
    assert ask(temperature=1.0, seed=11) != ask(temperature=1.0, seed=12)


def test_stop_sequences_cut_the_text(client: openai.OpenAI) -> None:
    out = client.completions.create(model="echo", prompt="alpha beta gamma delta", stop=[" gamma"], max_tokens=8)
    assert (out.choices[0].text, out.choices[0].finish_reason) == ("alpha beta", "stop")


def test_logprobs_are_consistent(client: openai.OpenAI, gateway: GatewayProcess) -> None:
    out = client.completions.create(model=CHAT_MODEL, prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3)
    lp = out.choices[0].logprobs
    assert lp is not None and lp.tokens and lp.token_logprobs and lp.top_logprobs and lp.text_offset
    assert "".join(lp.tokens) == out.choices[0].text
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset)
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs, strict=True):
        assert logprob <= 0 and token in top and len(top) <= 4
        assert top[token] == max(top.values())  # greedy picks the likeliest
    validate("CreateCompletionResponse",
             _raw(gateway, model=CHAT_MODEL, prompt=PROMPT, max_tokens=8, temperature=0, logprobs=3).json())


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"suffix": "the end"}, "suffix"),
    ({"best_of": 3}, "best_of"),
    ({"logit_bias": {"1": 10}}, "logit_bias"),
    ({"echo": True, "logprobs": 1}, "logprobs"),
    ({"n": 100}, "n"),
    ({"model": "all-minilm-l6-v2"}, "model"),
])
def test_refusals_name_the_parameter(client: openai.OpenAI, kwargs: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(**{"model": CHAT_MODEL, "prompt": PROMPT, "max_tokens": 4, **kwargs})
    assert info.value.body["param"] == param  # type: ignore[index]


# The TensorRT-LLM doubles (tests/models/trtllm.py) answer with the prompt they got, as the echo
# model does: each contract's text, counts and streaming must give the same completions.
MIMICS = ["trtllm-bls-mimic", "trtllm-bls-legacy-mimic", "trtllm-llmapi-mimic", "trtllm-ensemble-mimic"]
WORDS = "alpha beta gamma delta"


@pytest.mark.parametrize("model", MIMICS)
def test_every_tensorrt_llm_contract_completes_alike(client: openai.OpenAI, stack_dir: Path, model: str) -> None:
    from tests.models.trtllm import byte_fallback_tokens

    tokens = len(byte_fallback_tokens(WORDS))
    out = client.completions.create(model=model, prompt=WORDS, max_tokens=64, n=2, echo=True)
    assert [(c.index, c.text, c.finish_reason) for c in out.choices] == [
        (0, WORDS + WORDS, "stop"), (1, WORDS + WORDS, "stop")]
    assert out.usage is not None
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (tokens, 2 * tokens)
    chunks = list(client.completions.create(model=model, prompt=WORDS, max_tokens=64, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == WORDS
    assert len(chunks) >= 4  # cumulative text becomes several chunks, not one
    tok = Tokenizer.from_file(str(stack_dir / "models" / "test" / "byte_fallback" / "tokenizer.json"))
    ids = tok.encode(WORDS, add_special_tokens=False).ids
    by_ids = client.completions.create(model=model, prompt=[ids, ids[:5]], max_tokens=64)
    assert [c.text for c in by_ids.choices] == [WORDS, WORDS[:5]]


def test_the_llm_api_model_refuses_min_tokens_on_completions_too(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="trtllm-llmapi-mimic", prompt=WORDS, extra_body={"min_tokens": 2})
    assert info.value.body["param"] == "min_tokens"  # type: ignore[index]
