"""``TracedBackend``: the generation's facts on the request's span, its context sent to Triton.

Each generation carries the current span's W3C ``traceparent``/``tracestate`` in
``GenerationRequest.trace_headers``; the Triton backend sends them as gRPC metadata, so a
Triton started with OpenTelemetry tracing puts its spans under the gateway's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.backends.base import Backend, Delta, EmbeddingResult, GenerationRequest
from gateway.errors import GatewayError
from gateway.registry import ModelEntry

_PROPAGATOR = TraceContextTextMapPropagator()


class TracedBackend:
    """A ``Backend`` that annotates the current span and propagates it to ``inner``."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def ready_models(self) -> set[str]:
        return await self.inner.ready_models()

    async def is_ready(self) -> bool:
        return await self.inner.is_ready()

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        span = trace.get_current_span()
        if not span.is_recording():
            async for delta in self.inner.generate(request):
                yield delta
            return
        span.set_attribute("gen_ai.request.model", request.model.id)
        span.set_attribute("gen_ai.request.max_tokens", request.max_tokens)
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        request = replace(request, trace_headers=tuple(carrier.items()))
        outcome = "incomplete"  # the client left before the end
        last: Delta | None = None
        try:
            async for delta in self.inner.generate(request):
                last = delta
                if delta.finish_reason is not None:
                    outcome = delta.finish_reason
                yield delta
        except GatewayError as exc:
            outcome = exc.code or exc.type
            raise
        finally:
            span.set_attribute("chungus.outcome", outcome)
            if last is not None and last.prompt_tokens is not None:
                span.set_attribute("gen_ai.usage.input_tokens", last.prompt_tokens)
            if last is not None and last.completion_tokens is not None:
                span.set_attribute("gen_ai.usage.output_tokens", last.completion_tokens)

    async def embed(self, model: ModelEntry, texts: Sequence[str]) -> EmbeddingResult:
        span = trace.get_current_span()
        span.set_attribute("gen_ai.request.model", model.id)
        span.set_attribute("chungus.embedding.inputs", len(texts))
        result = await self.inner.embed(model, texts)
        if result.token_counts:
            span.set_attribute("gen_ai.usage.input_tokens", sum(result.token_counts))
        return result
