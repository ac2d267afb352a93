"""Sampling parameters shared by every generation route (chat, completions, responses): OpenAI
ranges checked, registry defaults applied, limits enforced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry

MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 256
MAX_TOP_K = 1024  # TensorRT-LLM's sampling kernels take top_k up to 1024
MAX_REPETITION_PENALTY = 10.0
INT64 = 2**63
# Temperatures this small are greedy decoding in every backend's arithmetic (FP32 underflows
# near 1e-38, and dividing logits by a denormal overflows): send 0 instead.
GREEDY_BELOW = 1e-4


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int
    temperature: float | None
    top_p: float | None
    top_k: int | None
    stop: tuple[str, ...]
    max_tokens_given: bool = True  # False: the model's default, which may shrink to fit


class SamplingRequest(Protocol):
    """The sampling fields a generation request carries (chat and completions spell them alike)."""

    @property
    def temperature(self) -> float | None: ...
    @property
    def top_p(self) -> float | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def max_completion_tokens(self) -> int | None: ...
    @property
    def stop(self) -> str | list[str] | None: ...
    @property
    def seed(self) -> int | None: ...
    @property
    def presence_penalty(self) -> float | None: ...
    @property
    def frequency_penalty(self) -> float | None: ...
    @property
    def top_k(self) -> int | None: ...
    @property
    def repetition_penalty(self) -> float | None: ...
    @property
    def min_tokens(self) -> int | None: ...


def bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _in_range(value: float | None, low: float, high: float, param: str) -> None:
    if value is not None and not low <= value <= high:
        raise bad(f"{value} is not a valid {param}: it must be between {low} and {high}", param)


def check_sampling(req: SamplingRequest, entry: ModelEntry) -> SamplingParams:
    """Validate a request's sampling parameters against OpenAI's ranges and the model's limits.

    Raises:
        InvalidRequestError: with ``param`` naming the offending field.
    """
    _in_range(req.temperature, 0.0, 2.0, "temperature")
    _in_range(req.top_p, 0.0, 1.0, "top_p")
    _in_range(req.presence_penalty, -2.0, 2.0, "presence_penalty")
    _in_range(req.frequency_penalty, -2.0, 2.0, "frequency_penalty")
    rp = req.repetition_penalty
    if rp is not None and not 0 < rp <= MAX_REPETITION_PENALTY:
        raise bad(f"{rp} is not a valid repetition_penalty: it must be greater than 0 and at "
                   f"most {MAX_REPETITION_PENALTY}", "repetition_penalty")
    if req.top_k is not None and not -1 <= req.top_k <= MAX_TOP_K:
        raise bad(f"{req.top_k} is not a valid top_k: it must be -1 or 0 (off), or between 1 "
                   f"and {MAX_TOP_K}", "top_k")
    if req.seed is not None and not -INT64 <= req.seed < INT64:
        raise bad(f"{req.seed} is not a valid seed: it must be a 64-bit integer", "seed")
    max_tokens = _max_tokens(req, entry)
    if req.min_tokens is not None and not 0 <= req.min_tokens <= max_tokens:
        raise bad("min_tokens must be between 0 and max_tokens", "min_tokens")
    top_k = req.top_k if req.top_k and req.top_k > 0 else None
    top_p = req.top_p
    if top_p == 0:  # OpenAI accepts 0: the most likely token only
        top_k, top_p = 1, None
    temperature = req.temperature if req.temperature is not None else entry.default_temperature
    if temperature is not None and temperature < GREEDY_BELOW:
        temperature = 0.0
    given = req.max_completion_tokens is not None or req.max_tokens is not None
    return SamplingParams(max_tokens, temperature, top_p, top_k, _stop(req.stop), given)


def fit_context(entry: ModelEntry, prompt_tokens: int | None, max_tokens: int, given: bool) -> int:
    """The ``max_tokens`` to run with, once the prompt's length is known.

    A default ``max_tokens`` shrinks to what the context leaves; one the client chose must fit.

    Raises:
        InvalidRequestError: ``context_length_exceeded`` (OpenAI's wording), before any model work.
    """
    if prompt_tokens is None:
        return max_tokens
    limit = entry.context_length
    if entry.max_input_tokens is not None and prompt_tokens > entry.max_input_tokens:
        raise _too_long(f"This model's maximum prompt length is {entry.max_input_tokens} tokens. "
                        f"However, your messages resulted in {prompt_tokens} tokens. Please "
                        "reduce the length of the messages.")
    if not given and prompt_tokens < limit:
        return min(max_tokens, limit - prompt_tokens)
    if prompt_tokens + max_tokens > limit:
        raise _too_long(f"This model's maximum context length is {limit} tokens. However, you "
                        f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the "
                        f"messages, {max_tokens} in the completion). Please reduce the length of "
                        "the messages or completion.")
    return max_tokens


def _too_long(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="messages", code="context_length_exceeded")


def _max_tokens(req: SamplingRequest, entry: ModelEntry) -> int:
    param = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    value = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if value is None:
        return entry.default_max_tokens
    if value < 1:
        raise bad(f"{param} must be at least 1", param)
    if value > entry.max_tokens_limit:
        raise bad(f"{param} is too large: {value}. This model supports at most "
                   f"{entry.max_tokens_limit} completion tokens", param)
    return value


def _stop(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    items = [stop] if isinstance(stop, str) else stop
    if len(items) > MAX_STOP_SEQUENCES:
        raise bad(f"at most {MAX_STOP_SEQUENCES} stop sequences are allowed", "stop")
    if any(len(s) > MAX_STOP_CHARS for s in items):
        raise bad(f"each stop sequence may be at most {MAX_STOP_CHARS} characters long", "stop")
    return tuple(s for s in items if s)
