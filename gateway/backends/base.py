"""The seam between OpenAI semantics and a model server: requests in, deltas out."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy.typing as npt

from gateway.registry import ModelEntry

FinishReason = Literal["stop", "length", "cancelled"]
# NVIDIA's guided_decoding_guide_type values (TensorRT-LLM's xgrammar backend; our CPU models too).
GuideType = Literal["json", "json_schema", "regex", "ebnf_grammar"]


@dataclass(frozen=True, slots=True)
class Guide:
    """Constrained decoding: the output must match ``text`` (a JSON schema, regex or EBNF
    grammar; empty for ``json``, any JSON value)."""

    type: GuideType
    text: str = ""
    # The client's parameter the guide comes from, named in a refusal (a backend without it).
    param: str = "response_format"


@dataclass(frozen=True, slots=True)
class TopLogprob:
    token: str
    bytes: bytes
    logprob: float


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One generated token's log-probability and, when asked for, the likeliest alternatives."""

    token: str
    bytes: bytes
    logprob: float
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationRequest:
    """One generation, already rendered to a prompt; the backend maps it to its own inputs."""

    model: ModelEntry
    prompt: str
    max_tokens: int
    stream: bool = True
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: Sequence[str] = ()
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    min_tokens: int | None = None
    # FP16 [n_images, 3, H, W] pixel values for vision models, in prompt order.
    images: npt.NDArray[Any] | None = None
    request_id: str = ""
    # The gateway's count of the prompt's tokens (None where the model has no tokenizer here).
    prompt_tokens: int | None = None
    # Constrained decoding (response_format json_object/json_schema, required or named tools).
    guide: Guide | None = None
    # Per-token log-probabilities on the deltas; top_logprobs alternatives per token (0-20).
    logprobs: bool = False
    top_logprobs: int = 0
    # W3C trace context (traceparent, tracestate) passed on to the model server.
    trace_headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True, kw_only=True)
class Delta:
    """A piece of generated text with the counts so far; the last one carries ``finish_reason``.

    ``completion_tokens`` is a running count on every delta, so a generation the client leaves
    early is billed for what was generated.
    """

    text: str = ""
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    # One entry per token in ``text`` when the request asked for logprobs.
    logprobs: list[TokenLogprob] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingResult:
    vectors: npt.NDArray[Any]  # FP32 [n, dim]
    token_counts: list[int] = field(default_factory=list)


class Backend(Protocol):
    """What the gateway needs from a model server."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ready_models(self) -> set[str]:
        """Triton model names that are ready on at least one endpoint."""
        ...

    async def is_ready(self) -> bool:
        """True when the server answers and is ready."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        """Stream deltas; raise ``gateway.errors.BackendError`` subclasses on failure."""
        ...

    async def embed(self, model: ModelEntry, texts: Sequence[str]) -> EmbeddingResult: ...
