"""The CPU chat engine (model_repository/llamacpp_chat) through the whole stack: min_tokens is
honored, prompt-prefix reuse changes speed but not outputs, batched requests match single ones,
and a client that leaves still cancels its sequence."""

from __future__ import annotations

import asyncio
import time

import openai
import pytest

from gateway.triton.server import TritonServer
from tests.e2e.conftest import CHAT_MODEL

FRANCE = [{"role": "user", "content": "Name the capital city of France."}]
# About 900 tokens of system prompt: its prefill takes about a second on two cores, its reuse does not.
LONG_SYSTEM = "You are a careful assistant. " + " ".join(
    f"Rule {i}: answer briefly and never mention the number {i * 7 + 3}." for i in range(60))


def test_min_tokens_equal_to_max_tokens_gives_exactly_that_many(client: openai.OpenAI) -> None:
    free = client.chat.completions.create(model=CHAT_MODEL, messages=FRANCE, temperature=0, max_tokens=40)
    assert free.choices[0].finish_reason == "stop"  # the prompt ends early on its own...
    assert free.usage.completion_tokens < 40
    pinned = client.chat.completions.create(model=CHAT_MODEL, messages=FRANCE, temperature=0, max_tokens=40,
                                            extra_body={"min_tokens": 40})
    assert pinned.usage.completion_tokens == 40  # ...and min_tokens keeps it going to exactly 40
    assert pinned.choices[0].finish_reason == "length"
    assert pinned.choices[0].message.content.startswith(free.choices[0].message.content.rstrip())


def test_min_tokens_below_the_natural_length_changes_nothing(client: openai.OpenAI) -> None:
    free = client.chat.completions.create(model=CHAT_MODEL, messages=FRANCE, temperature=0, max_tokens=40)
    low = client.chat.completions.create(model=CHAT_MODEL, messages=FRANCE, temperature=0, max_tokens=40,
                                         extra_body={"min_tokens": 2})
    assert low.choices[0].message.content == free.choices[0].message.content
    assert low.usage.completion_tokens == free.usage.completion_tokens


def test_min_tokens_with_sampling_and_streaming(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(
        model=CHAT_MODEL, messages=FRANCE, temperature=0.8, seed=5, max_tokens=24, stream=True,
        stream_options={"include_usage": True}, extra_body={"min_tokens": 24}))
    assert chunks[-1].usage.completion_tokens == 24
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]


def _stream_text(client: openai.OpenAI, **kw: object) -> tuple[str, int]:
    """Streamed (so that a slow, busy machine never trips the gateway's idle timeout)."""
    chunks = list(client.chat.completions.create(model=CHAT_MODEL, stream=True,
                                                 stream_options={"include_usage": True}, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks[-1].usage.completion_tokens


def test_seed_selects_the_sampled_answer(client: openai.OpenAI) -> None:
    """Different seeds, different answers; sampling is not greedy. (Bit-exact reproduction of a
    seed is not asserted here: the KV cells a request lands on in the shared pool change the
    rounding of llama.cpp's attention, see docs/benchmarks.md.)"""
    def ask(seed: int) -> str:
        return _stream_text(client, messages=FRANCE, temperature=1.0, seed=seed, max_tokens=24,
                            extra_body={"min_tokens": 24})[0]

    answers = {ask(s) for s in (11, 12, 13)}
    greedy = _stream_text(client, messages=FRANCE, temperature=0, max_tokens=24, extra_body={"min_tokens": 24})[0]
    assert len(answers) >= 2
    assert answers != {greedy}


def test_penalties_change_a_greedy_answer(client: openai.OpenAI) -> None:
    def ask(**kw: float) -> str:
        text, n = _stream_text(client, messages=FRANCE, temperature=0, max_tokens=40,
                               extra_body={"min_tokens": 40}, **kw)
        assert n == 40
        return text

    plain = ask()
    assert ask(frequency_penalty=1.5) != plain
    assert ask(presence_penalty=1.5) != plain


@pytest.mark.xfail(strict=False, reason="open CPU-engine fault (issue 18): runs of one request can "
                   "differ after other tests ran on the server; see docs/benchmarks.md")
def test_prefix_reuse_makes_a_repeated_prefix_fast(client: openai.OpenAI) -> None:
    """Sampled requests start from a cached prefix; greedy ones are prefilled whole, so they
    answer the same text every time (a prompt evaluated in pieces rounds differently)."""
    messages = [{"role": "system", "content": LONG_SYSTEM + f" Session {time.time_ns()}."},
                {"role": "user", "content": "Name the capital city of France."}]

    def timed(**sampling: object) -> tuple[float, str, int, int]:
        start = time.perf_counter()
        chunks = list(client.chat.completions.create(
            model=CHAT_MODEL, messages=messages, max_tokens=12, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True}, extra_body={"min_tokens": 12}, **sampling))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        usage = chunks[-1].usage
        return time.perf_counter() - start, text, usage.prompt_tokens, usage.completion_tokens

    cold_s, _, prompt_tokens, n = timed(temperature=0.7)
    warm_s, _, _, n_warm = timed(temperature=0.7)
    assert prompt_tokens > 600 and n == n_warm == 12
    assert warm_s < cold_s / 2, (cold_s, warm_s)  # the 600+ token prefix was not evaluated again
    # Greedy requests answer alike (in one of three pairs of runs: two runs may still differ after
    # a near-tie, see docs/benchmarks.md "Reproducibility").
    for _ in range(3):
        greedy = [timed(temperature=0)[1] for _ in range(2)]
        if greedy[0] == greedy[1]:
            break
    assert greedy[0] == greedy[1] and greedy[0]


async def test_batched_requests_keep_to_their_own_prompts(aclient: openai.AsyncOpenAI) -> None:
    """Four requests decoded in one batch answer their own prompts. (Not bit-identical to one at a
    time: llama.cpp's kernels for a batch of several tokens round differently, so a near tie in a
    greedy answer may flip after some tokens, as in llama-server.)"""
    prompts = [f"Write one sentence about the number {n}." for n in (3, 17, 42, 99)]

    async def ask(prompt: str) -> tuple[str, int]:
        out = await aclient.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=24,
            extra_body={"min_tokens": 24})
        return out.choices[0].message.content, out.usage.completion_tokens

    alone = [await ask(p) for p in prompts]
    together = await asyncio.gather(*(ask(p) for p in prompts))
    for (text, n), (ref, _) in zip(together, alone, strict=True):
        assert n == 24
        pairs = zip(text, ref, strict=False)
        same = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(text), len(ref)))
        assert same >= 20, (text, ref)  # the same start: no sequence reads another's KV
    assert len({t for t, _ in together}) == 4


async def test_disconnect_cancels_the_llama_sequence(aclient: openai.AsyncOpenAI, triton: TritonServer) -> None:
    marker = "llamacpp_chat: request cancelled after"
    before = triton.log_path.read_text().count(marker)
    stream = await aclient.chat.completions.create(
        model=CHAT_MODEL, messages=FRANCE, stream=True, max_tokens=1500, extra_body={"min_tokens": 1500})
    got = 0
    async for _chunk in stream:
        got += 1
        if got == 5:
            break
    await stream.close()
    for _ in range(100):
        if triton.log_path.read_text().count(marker) > before:
            break
        await asyncio.sleep(0.1)
    assert triton.log_path.read_text().count(marker) == before + 1
    # The engine is free again: a short request is served at once.
    start = time.perf_counter()
    out = await aclient.chat.completions.create(model=CHAT_MODEL, messages=FRANCE, temperature=0, max_tokens=8)
    assert out.usage.completion_tokens > 0
    assert time.perf_counter() - start < 60  # not behind the 1,500 tokens (minutes on a busy box)


VISION = "tiny-llava-random"


def test_vision_model_honors_min_tokens_and_penalties(client: openai.OpenAI) -> None:
    def ask(**extra: float) -> tuple[str, int, str]:
        out = client.chat.completions.create(model=VISION, messages=FRANCE, temperature=0, max_tokens=16,
                                             extra_body={"min_tokens": 16, **extra})
        return out.choices[0].message.content, out.usage.completion_tokens, out.choices[0].finish_reason

    plain, n, finish = ask()
    assert (n, finish) == (16, "length")
    assert ask(repetition_penalty=3.0)[0] != plain
    assert ask(frequency_penalty=2.0)[0] != plain


# ---- structured outputs and logprobs through the gateway ----------------------------------------

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 16},
                                           "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}


def test_json_schema_outputs_always_parse_and_validate(client: openai.OpenAI) -> None:
    import json

    import jsonschema

    for seed in (1, 2, 3, 4):
        out = client.chat.completions.create(
            model=CHAT_MODEL, messages=[{"role": "user", "content": "Invent a person."}], seed=seed,
            temperature=1.0, max_tokens=80,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON,
                                                                     "strict": True}})
        assert out.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(out.choices[0].message.content or ""), PERSON)


def test_greedy_logprobs_cover_the_answer_with_sorted_alternatives(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model=CHAT_MODEL, messages=FRANCE, temperature=0, max_tokens=12,
                                         logprobs=True, top_logprobs=3)
    content = out.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and "".join(t.token for t in content) == out.choices[0].message.content
    for token in content:
        alternatives = [a.logprob for a in token.top_logprobs]
        assert len(alternatives) == 3 and alternatives == sorted(alternatives, reverse=True)
        assert token.top_logprobs[0].token == token.token and token.logprob <= 0
    streamed = client.chat.completions.create(model=CHAT_MODEL, messages=FRANCE, temperature=0, max_tokens=12,
                                              logprobs=True, top_logprobs=3, stream=True)
    tokens = [t for c in streamed if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content or []]
    assert [(t.token, round(t.logprob, 4)) for t in tokens] == [(t.token, round(t.logprob, 4)) for t in content]


def test_a_grammar_that_does_not_compile_is_a_400(client: openai.OpenAI) -> None:
    import pytest

    bad = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(?<=x)a$"}}, "required": ["a"]}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=CHAT_MODEL, messages=FRANCE, max_tokens=8,
            response_format={"type": "json_schema", "json_schema": {"name": "bad", "schema": bad}})
    assert "guided_decoding_guide" in str(info.value.body)
