"""Completions' own parameter checks: every refusal names its parameter."""

from __future__ import annotations

import pytest

from gateway.completions.params import MAX_N, check_params
from gateway.completions.protocol import DEFAULT_MAX_TOKENS, CompletionRequest
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry

ENTRY = ModelEntry(id="m", triton_model="m", default_max_tokens=256, max_tokens_limit=100)


def _req(**fields: object) -> CompletionRequest:
    return CompletionRequest(model="m", prompt="p", **fields)  # type: ignore[arg-type]


def _param(**fields: object) -> str | None:
    with pytest.raises(InvalidRequestError) as info:
        check_params(_req(**fields), ENTRY)
    return info.value.param


def test_defaults_are_openais() -> None:
    params = check_params(_req(), ENTRY)
    assert (params.n, params.logprobs, params.echo) == (1, None, False)
    assert params.sampling.max_tokens == DEFAULT_MAX_TOKENS == 16


def test_a_null_max_tokens_is_the_default_too() -> None:
    assert check_params(_req(max_tokens=None), ENTRY).sampling.max_tokens == 16


@pytest.mark.parametrize(("fields", "param"), [
    ({"suffix": "tail"}, "suffix"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"best_of": 2}, "best_of"),
    ({"best_of": 3, "n": 2}, "best_of"),
    ({"n": 0}, "n"),
    ({"n": MAX_N + 1}, "n"),
    ({"logprobs": 6}, "logprobs"),
    ({"logprobs": -1}, "logprobs"),
    ({"echo": True, "logprobs": 0}, "logprobs"),
    ({"max_tokens": 101}, "max_tokens"),
    ({"temperature": 2.5}, "temperature"),
    ({"top_k": -2}, "top_k"),
    ({"min_tokens": 17}, "min_tokens"),
])
def test_refusals_name_the_parameter(fields: dict[str, object], param: str) -> None:
    assert _param(**fields) == param


@pytest.mark.parametrize("fields", [{"suffix": ""}, {"logit_bias": {}}, {"best_of": 1},
                                    {"best_of": 3, "n": 3}, {"echo": True}, {"logprobs": 5},
                                    {"logprobs": 0}, {"n": MAX_N}])
def test_harmless_values_pass(fields: dict[str, object]) -> None:
    check_params(_req(**fields), ENTRY)


def test_values_are_carried() -> None:
    params = check_params(_req(n=3, logprobs=4, echo=False, temperature=0.5, stop=["\n"]), ENTRY)
    assert (params.n, params.logprobs) == (3, 4)
    assert params.sampling.temperature == 0.5
    assert params.sampling.stop == ("\n",)
