"""A scripted in-process backend for integration tests of the HTTP layer (the seam below serving/)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field

import numpy as np

from gateway.backends.base import Delta, EmbeddingResult, FinishReason, GenerationRequest
from gateway.errors import GatewayError
from gateway.registry import ModelEntry


@dataclass
class FakeBackend:
    """Answers every generation with ``pieces`` (one delta each); can fail before or mid-stream."""

    ready: set[str] = field(default_factory=set)
    pieces: Sequence[str] = ("Hello", " world", "!")
    delay_s: float = 0.0
    fail_before: GatewayError | None = None
    fail_after: int | None = None  # raise fail_mid after this many deltas
    fail_mid: GatewayError | None = None
    requests: list[GenerationRequest] = field(default_factory=list)
    cancelled: int = 0
    up: bool = True

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def ready_models(self) -> set[str]:
        return set(self.ready) if self.up else set()

    async def is_ready(self) -> bool:
        return self.up

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        self.requests.append(request)
        if self.fail_before is not None:
            raise self.fail_before
        pieces = list(self.pieces)[: request.max_tokens]
        sent = 0
        try:
            for piece in pieces:
                if self.fail_after is not None and sent >= self.fail_after and self.fail_mid:
                    raise self.fail_mid
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                sent += 1
                yield Delta(text=piece, completion_tokens=sent)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise
        reason: FinishReason = "length" if len(self.pieces) > request.max_tokens else "stop"
        yield Delta(finish_reason=reason, prompt_tokens=len(request.prompt.split()),
                    completion_tokens=len(pieces))

    async def embed(self, model: ModelEntry, texts: Sequence[str]) -> EmbeddingResult:
        dim = model.embedding_dim or 8
        vectors = np.zeros((len(texts), dim), dtype=np.float32)
        for i, text in enumerate(texts):
            vectors[i, len(text) % dim] = 1.0
        return EmbeddingResult(vectors=vectors, token_counts=[len(t.split()) for t in texts])
