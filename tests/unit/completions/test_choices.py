"""Choice progress, echo, finish reasons, usage over choices and the interleaving of generations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from gateway.backends.base import Delta, TokenLogprob
from gateway.backends.fanout import interleave
from gateway.completions.choices import ChoiceRun, usage
from gateway.completions.logprobs import LegacyLogprobs
from gateway.errors import BadGatewayError, InvalidRequestError


def test_echo_goes_before_the_first_text_only() -> None:
    run = ChoiceRun(index=3, prompt_index=1, echo="Say: ")
    first = run.take(Delta(text="a", completion_tokens=1), "m")
    second = run.take(Delta(text="b", completion_tokens=2), "m")
    end = run.take(Delta(finish_reason="length", prompt_tokens=7, completion_tokens=2), "m")
    assert first is not None and (first.index, first.text, first.finish_reason) == (3, "Say: a", None)
    assert second is not None and second.text == "b"
    assert end is not None and (end.text, end.finish_reason) == ("", "length")
    whole = run.choice()
    assert (whole.index, whole.text, whole.finish_reason, whole.logprobs) == (3, "Say: ab", "length", None)
    assert (run.prompt_tokens, run.completion_tokens) == (7, 2)


def test_empty_deltas_send_nothing_and_cancelled_reads_stop() -> None:
    run = ChoiceRun(index=0, prompt_index=0)
    assert run.take(Delta(completion_tokens=1), "m") is None
    end = run.take(Delta(finish_reason="cancelled"), "m")
    assert end is not None and end.finish_reason == "stop"
    assert run.completion_tokens == 1  # a delta without a count keeps the last one


def test_echo_alone_when_nothing_was_generated() -> None:
    run = ChoiceRun(index=0, prompt_index=0, echo="prompt")
    assert run.choice().text == "prompt"
    closing = run.ended()
    assert (closing.text, closing.finish_reason) == ("prompt", "stop")


def test_logprobs_are_required_once_asked_for() -> None:
    run = ChoiceRun(index=0, prompt_index=0, logprobs=LegacyLogprobs(1))
    token = TokenLogprob(token="a", bytes=b"a", logprob=-0.5)
    chunk = run.take(Delta(text="a", logprobs=[token]), "m")
    assert chunk is not None and chunk.logprobs is not None and chunk.logprobs.tokens == ["a"]
    with pytest.raises(InvalidRequestError) as info:
        run.take(Delta(text="b"), "m")
    assert info.value.param == "logprobs"


def test_usage_counts_each_prompt_once_and_sums_the_choices() -> None:
    n = 2
    runs = [ChoiceRun(index=i, prompt_index=i // n) for i in range(6)]
    runs[0].take(Delta(finish_reason="stop", prompt_tokens=10, completion_tokens=3), "m")
    runs[1].take(Delta(finish_reason="stop", prompt_tokens=10, completion_tokens=4), "m")
    runs[3].take(Delta(finish_reason="stop", prompt_tokens=20, completion_tokens=5), "m")
    # prompt 2 never reported its count: the gateway's estimate stands in
    got = usage(runs, [1, 2, 30])
    assert (got.prompt_tokens, got.completion_tokens, got.total_tokens) == (60, 12, 72)


async def _gen(name: str, count: int, delay: float) -> AsyncGenerator[Delta, None]:
    for i in range(count):
        await asyncio.sleep(delay)
        yield Delta(text=f"{name}{i}")


async def test_interleave_yields_as_they_come_tagged_by_index() -> None:
    got = [(i, d.text) async for i, d in interleave([_gen("a", 2, 0.03), _gen("b", 2, 0.001)])]
    assert sorted(got) == [(0, "a0"), (0, "a1"), (1, "b0"), (1, "b1")]
    assert got[0] == (1, "b0")  # the faster one first


async def test_a_failure_stops_the_others_and_is_raised() -> None:
    closed: list[str] = []

    async def slow() -> AsyncGenerator[Delta, None]:
        try:
            while True:
                await asyncio.sleep(0.01)
                yield Delta(text="s")
        finally:
            closed.append("slow")

    async def failing() -> AsyncGenerator[Delta, None]:
        await asyncio.sleep(0.02)
        yield Delta(text="f")
        raise BadGatewayError("broken")

    with pytest.raises(BadGatewayError):
        async for _ in interleave([slow(), failing()]):
            pass
    assert closed == ["slow"]


async def test_closing_early_cancels_every_generation() -> None:
    closed: list[int] = []

    async def endless(i: int) -> AsyncGenerator[Delta, None]:
        try:
            while True:
                await asyncio.sleep(0.005)
                yield Delta(text=str(i))
        finally:
            closed.append(i)

    items = interleave([endless(0), endless(1), endless(2)])
    await anext(items)
    await items.aclose()
    assert sorted(closed) == [0, 1, 2]


async def test_one_generation_runs_without_tasks() -> None:
    before = len(asyncio.all_tasks())
    items = interleave([_gen("x", 2, 0)])
    assert (await anext(items))[1].text == "x0"
    assert len(asyncio.all_tasks()) == before
    await items.aclose()
