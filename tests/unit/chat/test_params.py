"""Sampling parameters: OpenAI's ranges, our bounds (named in the error), greedy mapping, and the
context check that runs before any model work."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway.chat.params import check_params
from gateway.chat.protocol import ChatCompletionRequest
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry
from gateway.sampling import (
    GREEDY_BELOW,
    MAX_REPETITION_PENALTY,
    MAX_STOP_CHARS,
    MAX_STOP_SEQUENCES,
    MAX_TOP_K,
    fit_context,
)

ENTRY = ModelEntry(id="m", triton_model="m", default_max_tokens=50, max_tokens_limit=200,
                   context_length=100)


def _req(**fields: Any) -> ChatCompletionRequest:
    return msgspec.convert({"model": "m", "messages": [{"role": "user", "content": "x"}], **fields},
                           ChatCompletionRequest)


@pytest.mark.parametrize(("fields", "param"), [
    ({"temperature": 2.0001}, "temperature"), ({"temperature": -0.1}, "temperature"),
    ({"top_p": 1.5}, "top_p"), ({"presence_penalty": 2.5}, "presence_penalty"),
    ({"frequency_penalty": -2.01}, "frequency_penalty"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"repetition_penalty": MAX_REPETITION_PENALTY + 0.5}, "repetition_penalty"),
    ({"repetition_penalty": 1e39}, "repetition_penalty"),
    ({"top_k": -2}, "top_k"), ({"top_k": MAX_TOP_K + 1}, "top_k"), ({"top_k": 2**31}, "top_k"),
    ({"top_k": 2**63}, "top_k"), ({"seed": 2**63}, "seed"), ({"seed": -(2**63) - 1}, "seed"),
    ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": 201}, "max_tokens"),
    ({"max_completion_tokens": 2**63}, "max_completion_tokens"),
    ({"min_tokens": 60}, "min_tokens"), ({"min_tokens": -1}, "min_tokens"),
    ({"stop": ["s"] * (MAX_STOP_SEQUENCES + 1)}, "stop"),
    ({"stop": "x" * (MAX_STOP_CHARS + 1)}, "stop"), ({"n": 0}, "n"),
])
def test_out_of_range_values_are_refused_naming_the_parameter(fields: dict[str, Any],
                                                              param: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_params(_req(**fields), ENTRY)
    assert (info.value.status, info.value.param, info.value.code) == (400, param, "invalid_value")


def test_edges_are_accepted_and_values_pass_through() -> None:
    got = check_params(_req(temperature=2.0, top_p=1.0, top_k=MAX_TOP_K, seed=2**63 - 1,
                            repetition_penalty=MAX_REPETITION_PENALTY, max_tokens=200,
                            stop=["a", "", "b" * MAX_STOP_CHARS]), ENTRY)
    assert (got.temperature, got.top_p, got.top_k, got.max_tokens) == (2.0, 1.0, MAX_TOP_K, 200)
    assert got.stop == ("a", "b" * MAX_STOP_CHARS) and got.max_tokens_given


def test_tiny_temperatures_are_greedy_and_top_p_0_means_top_k_1() -> None:
    assert check_params(_req(temperature=1e-40), ENTRY).temperature == 0.0
    assert check_params(_req(temperature=GREEDY_BELOW / 2), ENTRY).temperature == 0.0
    assert check_params(_req(temperature=GREEDY_BELOW), ENTRY).temperature == GREEDY_BELOW
    zero = check_params(_req(top_p=0), ENTRY)
    assert (zero.top_k, zero.top_p) == (1, None)
    assert check_params(_req(top_k=0), ENTRY).top_k is None


def test_default_max_tokens_is_the_models_and_not_given() -> None:
    got = check_params(_req(), ENTRY)
    assert (got.max_tokens, got.max_tokens_given) == (50, False)


def test_fit_context_shrinks_a_default_and_refuses_a_chosen_limit_with_openais_words() -> None:
    assert fit_context(ENTRY, 80, 50, given=False) == 20
    assert fit_context(ENTRY, 30, 50, given=False) == 50
    assert fit_context(ENTRY, 50, 50, given=True) == 50
    assert fit_context(ENTRY, None, 500, given=True) == 500  # no tokenizer: the model decides
    with pytest.raises(InvalidRequestError) as info:
        fit_context(ENTRY, 60, 41, given=True)
    err = info.value
    assert (err.status, err.code, err.param) == (400, "context_length_exceeded", "messages")
    assert err.message == ("This model's maximum context length is 100 tokens. However, you "
                           "requested 101 tokens (60 in the messages, 41 in the completion). "
                           "Please reduce the length of the messages or completion.")
    with pytest.raises(InvalidRequestError):
        fit_context(ENTRY, 100, 50, given=False)  # nothing left for a default


def test_fit_context_checks_the_engines_input_limit() -> None:
    engine = ModelEntry(id="e", triton_model="e", context_length=4096, max_input_tokens=1024)
    assert fit_context(engine, 1024, 16, given=True) == 16
    with pytest.raises(InvalidRequestError) as info:
        fit_context(engine, 1025, 16, given=True)
    assert info.value.message.startswith("This model's maximum prompt length is 1024 tokens.")


@pytest.mark.parametrize(("fields", "param", "message"), [
    ({"n": 17}, "n", "n must be between 1 and 16"),
    ({"top_logprobs": 2}, "top_logprobs", "top_logprobs requires logprobs to be true"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "top_logprobs must be between 0 and 20"),
    ({"temperature": 2.0001}, "temperature",
     "2.0001 is not a valid temperature: it must be between 0.0 and 2.0"),
    ({"top_p": 1.5}, "top_p", "1.5 is not a valid top_p: it must be between 0.0 and 1.0"),
    ({"presence_penalty": -2.01}, "presence_penalty",
     "-2.01 is not a valid presence_penalty: it must be between -2.0 and 2.0"),
    ({"frequency_penalty": 2.01}, "frequency_penalty",
     "2.01 is not a valid frequency_penalty: it must be between -2.0 and 2.0"),
    ({"repetition_penalty": -1.5}, "repetition_penalty",
     "-1.5 is not a valid repetition_penalty: it must be greater than 0 and at most 10.0"),
    ({"top_k": -2}, "top_k", "-2 is not a valid top_k: it must be -1 or 0 (off), or between 1 and 1024"),
    ({"seed": 2**63}, "seed", "9223372036854775808 is not a valid seed: it must be a 64-bit integer"),
    ({"min_tokens": 51}, "min_tokens", "min_tokens must be between 0 and max_tokens"),
    ({"max_tokens": 0}, "max_tokens", "max_tokens must be at least 1"),
    ({"max_tokens": 201}, "max_tokens",
     "max_tokens is too large: 201. This model supports at most 200 completion tokens"),
    ({"max_completion_tokens": 0, "max_tokens": 5}, "max_completion_tokens",
     "max_completion_tokens must be at least 1"),
    ({"stop": ["s"] * (MAX_STOP_SEQUENCES + 1)}, "stop", "at most 16 stop sequences are allowed"),
    ({"stop": ["x" * (MAX_STOP_CHARS + 1)]}, "stop",
     "each stop sequence may be at most 256 characters long"),
])
def test_refusals_say_exactly_what_is_wrong(fields: dict[str, Any], param: str, message: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        check_params(_req(**fields), ENTRY)
    assert (info.value.message, info.value.param, info.value.code) == (message, param, "invalid_value")


@pytest.mark.parametrize("fields", [
    {"presence_penalty": -2.0}, {"presence_penalty": 2.0}, {"frequency_penalty": -2.0},
    {"frequency_penalty": 2.0}, {"temperature": 0.0}, {"top_p": 0.0}, {"repetition_penalty": 0.5},
    {"top_k": -1}, {"seed": -(2**63)}, {"min_tokens": 0}, {"min_tokens": 50}, {"max_tokens": 1},
    {"n": 1}, {"logprobs": False}, {"tools": []}, {"response_format": {"type": "text"}},
    {"response_format": {"schema": "x"}}, {"stop": ["s"] * MAX_STOP_SEQUENCES},
])
def test_lower_and_upper_edges_are_accepted(fields: dict[str, Any]) -> None:
    check_params(_req(**fields), ENTRY)


def test_top_k_off_values_and_one_pass_through() -> None:
    assert check_params(_req(top_k=-1), ENTRY).top_k is None
    assert check_params(_req(top_k=1), ENTRY).top_k == 1
    assert check_params(_req(top_k=40), ENTRY).top_k == 40


def test_the_registry_default_temperature_applies_only_when_none_is_sent() -> None:
    warm = ModelEntry(id="w", triton_model="w", default_temperature=0.7)
    assert check_params(_req(), warm).temperature == 0.7
    assert check_params(_req(temperature=1.5), warm).temperature == 1.5
    assert check_params(_req(temperature=0), warm).temperature == 0.0
    assert check_params(_req(), ENTRY).temperature is None


def test_stop_as_one_string_and_max_completion_tokens_wins() -> None:
    got = check_params(_req(stop="ab", max_completion_tokens=7, max_tokens=9), ENTRY)
    assert (got.stop, got.max_tokens, got.max_tokens_given) == (("ab",), 7, True)
    assert check_params(_req(max_tokens=9), ENTRY).max_tokens == 9
    assert check_params(_req(stop=None), ENTRY).stop == ()


def test_fit_context_input_limit_message_in_full() -> None:
    engine = ModelEntry(id="e", triton_model="e", context_length=4096, max_input_tokens=1024)
    with pytest.raises(InvalidRequestError) as info:
        fit_context(engine, 1025, 16, given=False)
    assert (info.value.param, info.value.code) == ("messages", "context_length_exceeded")
    assert info.value.message == ("This model's maximum prompt length is 1024 tokens. However, your "
                                  "messages resulted in 1025 tokens. Please reduce the length of the "
                                  "messages.")
