"""The seam between OpenAI semantics and a model server: requests in, deltas out."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy.typing as npt

from gateway.registry import ModelEntry

FinishReason = Literal["stop", "length", "cancelled"]


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
