"""Embeddings over Triton's unary ``ModelInfer``: strings [n, 1] in, ``embedding`` [n, dim] and
``num_tokens`` out.

The streaming-only rule is for generation (a decoupled model answers in many responses); an
embedding is one request and one response, and a unary call costs Triton and the gateway less
than opening a bidirectional stream for it (``docs/benchmarks.md``). Chunks run concurrently; the
model's dynamic batcher merges them (and other clients' requests) into forward passes. The first
chunk that fails cancels the others, which cancels their gRPC calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput, InferRequestedOutput

from gateway.backends.base import EmbeddingResult
from gateway.errors import BadGatewayError, GatewayTimeoutError
from gateway.triton.errors import mapped_errors

CHUNK = 64  # strings per Triton request: at most the model's max_batch_size
OUTPUTS = (InferRequestedOutput("embedding"), InferRequestedOutput("num_tokens"))

Part = tuple[npt.NDArray[Any], npt.NDArray[Any]]


def build_input(texts: Sequence[str]) -> InferInput:
    """``text_input`` BYTES [n, 1]: one row per string, as the model's dynamic batcher wants."""
    array = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
    tensor = InferInput("text_input", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def parse_outputs(parts: Sequence[Part], expected: int) -> EmbeddingResult:
    """Concatenate the chunks' ``embedding`` and ``num_tokens`` in order.

    Raises:
        GatewayError: the model answered with the wrong number of rows.
    """
    if any(p[0] is None or p[1] is None for p in parts):
        raise BadGatewayError("the embedding model answered without its outputs")
    vectors = np.concatenate([p[0] for p in parts]).astype(np.float32, copy=False)
    counts = np.concatenate([p[1].reshape(-1) for p in parts])
    if vectors.ndim != 2 or len(vectors) != expected or len(counts) != expected:
        raise BadGatewayError("the embedding model answered with the wrong shape")
    return EmbeddingResult(vectors=vectors, token_counts=counts.astype(int).tolist())


async def _infer(client: grpcclient.InferenceServerClient, model: str, texts: Sequence[str],
                 timeout_s: float) -> Part:
    with mapped_errors():
        result = await client.infer(model, [build_input(texts)], outputs=list(OUTPUTS),
                                    client_timeout=timeout_s)
    return result.as_numpy("embedding"), result.as_numpy("num_tokens")


async def _all_or_nothing(calls: list[asyncio.Task[Part]]) -> list[Part]:
    """Every chunk's answer in order; the first failure cancels the calls still running."""
    try:
        done, _ = await asyncio.wait(calls, return_when=asyncio.FIRST_EXCEPTION)
        for task in calls:
            if task in done and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        return [task.result() for task in calls]
    finally:
        for task in calls:
            task.cancel()
        await asyncio.gather(*calls, return_exceptions=True)


async def embed(client: grpcclient.InferenceServerClient, model: str, texts: Sequence[str],
                timeout_s: float) -> EmbeddingResult:
    """Embed ``texts`` in chunks of ``CHUNK`` sent concurrently, reassembled in order.

    Raises:
        GatewayError: Triton unavailable, timed out, or the model failed.
    """
    chunks = [texts[i:i + CHUNK] for i in range(0, len(texts), CHUNK)]
    try:
        async with asyncio.timeout(timeout_s):
            calls = [asyncio.create_task(_infer(client, model, c, timeout_s)) for c in chunks]
            parts = await _all_or_nothing(calls)
    except TimeoutError as exc:
        raise GatewayTimeoutError("the embedding model did not answer in time") from exc
    return parse_outputs(parts, len(texts))
