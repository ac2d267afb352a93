"""``MeteredBackend``: the generation and embedding figures, measured at the backend seam.

Wrapping ``Backend.generate`` gives time to first token, inter-token latency, token counts,
streams in flight and backend errors for every feature (chat, completions, responses) without
touching their code. Time to first token runs from the request's arrival (as vLLM measures it)
when the request middleware is on, else from the call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING

from gateway.backends.base import Backend, Delta, EmbeddingResult, GenerationRequest
from gateway.errors import GatewayError
from gateway.metrics.middleware import current_request
from gateway.registry import ModelEntry

if TYPE_CHECKING:
    from gateway.metrics.recorder import Metrics


class MeteredBackend:
    """A ``Backend`` that records into ``metrics`` what passes through ``inner``."""

    def __init__(self, inner: Backend, metrics: Metrics,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.inner = inner
        self.metrics = metrics
        self.clock = clock  # the request middleware's clock (tests pass their own)

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def ready_models(self) -> set[str]:
        return await self.inner.ready_models()

    async def is_ready(self) -> bool:
        return await self.inner.is_ready()

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        model = request.model.id
        record = current_request()
        if record is not None:
            record.model = model
        m = self.metrics
        window = m.window
        ttft, itl = m.child(m.ttft, model), m.child(m.itl, model)
        streams = m.child(m.streams_in_flight, model)
        started = record.started if record is not None else self.clock()
        last: float | None = None
        seen = prompt = 0
        streams.inc()
        window.streams_in_flight += 1
        try:
            async for delta in self.inner.generate(request):
                count = delta.completion_tokens
                new = (count - seen) if count is not None else (1 if delta.text else 0)
                if new > 0:
                    now = self.clock()
                    if last is None:
                        ttft.observe(now - started)
                        window.ttft(now - started)
                    else:
                        per_token = (now - last) / new
                        for _ in range(new):
                            itl.observe(per_token)
                        window.itl(per_token)
                    last = now
                    seen += new
                if delta.prompt_tokens is not None:
                    prompt = delta.prompt_tokens
                yield delta
        except GatewayError as exc:
            _count_error(m, model, exc)
            raise
        finally:
            streams.dec()
            window.streams_in_flight -= 1
            if prompt:
                m.child(m.prompt_tokens, model).inc(prompt)
            if seen:
                m.child(m.completion_tokens, model).inc(seen)

    async def embed(self, model: ModelEntry, texts: Sequence[str]) -> EmbeddingResult:
        record = current_request()
        if record is not None:
            record.model = model.id
        self.metrics.embedding_batch.labels(model.id).observe(len(texts))
        try:
            result = await self.inner.embed(model, texts)
        except GatewayError as exc:
            _count_error(self.metrics, model.id, exc)
            raise
        if result.token_counts:
            self.metrics.prompt_tokens.labels(model.id).inc(sum(result.token_counts))
        return result


def _count_error(metrics: Metrics, model: str, error: GatewayError) -> None:
    """A model server failure (5xx) by its code; refusals of the request itself (400) are not."""
    if error.status >= 500:
        metrics.backend_errors.labels(model, error.code or error.type).inc()
