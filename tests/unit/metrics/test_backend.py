"""MeteredBackend: TTFT, inter-token latency, tokens, streams and errors from the backend seam."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence

import numpy as np
import pytest

from gateway.backends.base import Delta, EmbeddingResult, GenerationRequest
from gateway.backends.fake import FakeBackend
from gateway.errors import GatewayTimeoutError, InvalidRequestError, ServiceUnavailableError
from gateway.metrics import Metrics
from gateway.metrics.backend import MeteredBackend
from gateway.registry import ModelEntry

MODEL = ModelEntry(id="chat-a", triton_model="chat_a")


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


class Scripted:
    """Yields ``steps`` of (seconds before, delta), advancing ``clock``; may fail at the end."""

    def __init__(self, clock: Clock, steps: Sequence[tuple[float, Delta]],
                 fail: Exception | None = None) -> None:
        self.clock, self.steps, self.fail = clock, steps, fail

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ready_models(self) -> set[str]:
        return {"chat_a"}

    async def is_ready(self) -> bool:
        return True

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Delta, None]:
        for wait, delta in self.steps:
            self.clock.now += wait
            yield delta
        if self.fail is not None:
            raise self.fail

    async def embed(self, model: ModelEntry, texts: Sequence[str]) -> EmbeddingResult:
        return EmbeddingResult(vectors=np.zeros((len(texts), 4), dtype=np.float32),
                               token_counts=[3] * len(texts))


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


async def drain(backend: MeteredBackend) -> list[Delta]:
    request = GenerationRequest(model=MODEL, prompt="p", max_tokens=10)
    return [d async for d in backend.generate(request)]


async def test_ttft_itl_and_tokens_from_deltas() -> None:
    clock, metrics = Clock(), Metrics()
    steps = [(0.25, Delta(text="a", completion_tokens=1)),
             (0.5, Delta(text="bcd", completion_tokens=4)),  # three tokens in 0.5 s
             (0.0, Delta(finish_reason="stop", prompt_tokens=7, completion_tokens=4))]
    await drain(MeteredBackend(Scripted(clock, steps), metrics, clock))
    ttft = "chungus_time_to_first_token_seconds"
    assert value(metrics, f"{ttft}_count", model="chat-a") == 1
    assert value(metrics, f"{ttft}_sum", model="chat-a") == 0.25
    assert value(metrics, f"{ttft}_bucket", model="chat-a", le="0.25") == 1
    assert value(metrics, f"{ttft}_bucket", model="chat-a", le="0.1") == 0
    itl = "chungus_inter_token_latency_seconds"
    assert value(metrics, f"{itl}_count", model="chat-a") == 3  # one per token after the first
    assert value(metrics, f"{itl}_sum", model="chat-a") == pytest.approx(0.5)
    assert value(metrics, f"{itl}_bucket", model="chat-a", le="0.15") == 0
    assert value(metrics, f"{itl}_bucket", model="chat-a", le="0.2") == 3  # 0.1667 each
    assert value(metrics, "chungus_prompt_tokens_total", model="chat-a") == 7
    assert value(metrics, "chungus_completion_tokens_total", model="chat-a") == 4
    assert value(metrics, "chungus_streams_in_flight", model="chat-a") == 0
    assert metrics.window.streams_in_flight == 0
    live = metrics.live()
    assert (live.ttft_p50_ms, live.itl_p50_ms) == (250.0, pytest.approx(500 / 3))


async def test_text_without_counts_counts_one_token_per_delta() -> None:
    clock, metrics = Clock(), Metrics()
    steps = [(0.1, Delta(text="a")), (0.02, Delta(text="b")), (0.0, Delta(finish_reason="stop"))]
    await drain(MeteredBackend(Scripted(clock, steps), metrics, clock))
    assert value(metrics, "chungus_inter_token_latency_seconds_count", model="chat-a") == 1
    assert value(metrics, "chungus_completion_tokens_total", model="chat-a") == 2
    assert value(metrics, "chungus_prompt_tokens_total", model="chat-a") is None


async def test_streams_in_flight_while_streaming() -> None:
    clock, metrics = Clock(), Metrics()
    backend = MeteredBackend(Scripted(clock, [(0.1, Delta(text="a", completion_tokens=1))]),
                             metrics, clock)
    stream = backend.generate(GenerationRequest(model=MODEL, prompt="p", max_tokens=5))
    await anext(stream)
    assert value(metrics, "chungus_streams_in_flight", model="chat-a") == 1
    assert metrics.live().streams_in_flight == 1
    await stream.aclose()  # the client left: counted as generated, not as an error
    assert value(metrics, "chungus_streams_in_flight", model="chat-a") == 0
    assert value(metrics, "chungus_completion_tokens_total", model="chat-a") == 1
    assert value(metrics, "chungus_backend_errors_total", model="chat-a",
                 kind="timeout") is None


async def test_backend_errors_by_kind() -> None:
    clock, metrics = Clock(), Metrics()
    mid = Scripted(clock, [(0.1, Delta(text="a", completion_tokens=1))],
                   fail=GatewayTimeoutError("slow"))
    with pytest.raises(GatewayTimeoutError):
        await drain(MeteredBackend(mid, metrics, clock))
    fake = FakeBackend(fail_before=ServiceUnavailableError("down", code="model_not_ready"))
    with pytest.raises(ServiceUnavailableError):
        await drain(MeteredBackend(fake, metrics, clock))
    assert value(metrics, "chungus_backend_errors_total", model="chat-a", kind="timeout") == 1
    assert value(metrics, "chungus_backend_errors_total", model="chat-a",
                 kind="model_not_ready") == 1
    assert value(metrics, "chungus_streams_in_flight", model="chat-a") == 0
    too_long = FakeBackend(fail_before=InvalidRequestError("long", code="context_length_exceeded"))
    with pytest.raises(InvalidRequestError):  # the request's fault, not the model server's
        await drain(MeteredBackend(too_long, metrics, clock))
    assert value(metrics, "chungus_backend_errors_total", model="chat-a",
                 kind="context_length_exceeded") is None


async def test_embeddings_batch_size_and_tokens() -> None:
    clock, metrics = Clock(), Metrics()
    backend = MeteredBackend(Scripted(clock, []), metrics, clock)
    emb = ModelEntry(id="emb", kind="embedding", triton_model="emb", contract="embedding")
    await backend.embed(emb, ["a"] * 5)
    await backend.embed(emb, ["a"] * 40)
    name = "chungus_embedding_batch_size"
    assert value(metrics, f"{name}_count", model="emb") == 2
    assert value(metrics, f"{name}_sum", model="emb") == 45
    assert value(metrics, f"{name}_bucket", model="emb", le="8.0") == 1
    assert value(metrics, f"{name}_bucket", model="emb", le="64.0") == 2
    assert value(metrics, "chungus_prompt_tokens_total", model="emb") == 135
