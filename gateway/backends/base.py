"""The seam between OpenAI semantics and a model server: requests in, deltas out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

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
    images: np.ndarray | None = None
    request_id: str = ""


@dataclass(slots=True, kw_only=True)
class Delta:
    """A piece of generated text. The last delta of a generation carries ``finish_reason``."""

    text: str = ""
    finish_reason: FinishReason | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingResult:
    vectors: np.ndarray  # FP32 [n, dim]
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

    def generate(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        """Stream deltas; raise ``gateway.errors.BackendError`` subclasses on failure."""
        ...

    async def embed(self, model: ModelEntry, texts: Sequence[str]) -> EmbeddingResult: ...

    def count_tokens(self, model: ModelEntry, text: str) -> int | None:
        """Count tokens with the model's tokenizer, where the backend knows one."""
        ...
