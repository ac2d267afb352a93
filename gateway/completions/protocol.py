"""OpenAI legacy completion wire structs (requests ignore unknown fields; names as in OpenAI's spec).

The response and every stream chunk share one shape (``Completion``), as OpenAI's do.
"""

from __future__ import annotations

from msgspec import UNSET, Struct, UnsetType

# OpenAI's default when ``max_tokens`` is omitted (or null) on /v1/completions.
DEFAULT_MAX_TOKENS = 16

# A string, a list of strings, a list of token ids, or a list of lists of token ids. msgspec
# allows one array type per union, so the list's items are checked to be all alike in the service.
Prompt = str | list[str | int | list[int]]


class StreamOptions(Struct):
    include_usage: bool = False


class CompletionRequest(Struct, kw_only=True):
    model: str
    prompt: Prompt
    max_tokens: int | None = DEFAULT_MAX_TOKENS
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: int | None = None
    echo: bool | None = False
    user: str | None = None
    # Accepted on the wire so that they are refused with a clear message, never ignored.
    suffix: str | None = None
    best_of: int | None = None
    logit_bias: dict[str, float] | None = None
    # Extensions beyond OpenAI (vLLM and TensorRT-LLM spell them the same way).
    top_k: int | None = None
    repetition_penalty: float | None = None
    min_tokens: int | None = None

    @property
    def max_completion_tokens(self) -> int | None:
        """Chat's newer spelling of ``max_tokens``; completions have only ``max_tokens``."""
        return None


# Responses ------------------------------------------------------------------------------------


class CompletionUsage(Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionLogprobs(Struct):
    """Legacy log-probabilities: one entry per generated token in each list."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class CompletionChoice(Struct):
    text: str
    index: int
    logprobs: CompletionLogprobs | None
    # "stop" | "length"; null only in stream chunks before a choice's last one, as OpenAI sends.
    finish_reason: str | None


class Completion(Struct, kw_only=True):
    id: str
    object: str = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | UnsetType = UNSET
