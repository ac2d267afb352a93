"""Embeddings over Triton's gRPC stream: strings [n, 1] in, ``embedding`` [n, dim] and ``num_tokens`` out.

Like every call the gateway makes, each chunk goes over the bidirectional streaming API (one
request, one response: the model is not decoupled). Chunks run concurrently; the model's dynamic
batcher merges them (and other clients' requests) into forward passes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput, InferRequestedOutput

from gateway.backends.base import EmbeddingResult
from gateway.errors import BadGatewayError, GatewayTimeoutError, ServiceUnavailableError
from gateway.triton.errors import map_exception, mapped_errors

CHUNK = 64  # strings per Triton request: at most the model's max_batch_size
OUTPUTS = (InferRequestedOutput("embedding"), InferRequestedOutput("num_tokens"))


def build_input(texts: Sequence[str]) -> InferInput:
    """``text_input`` BYTES [n, 1]: one row per string, as the model's dynamic batcher wants."""
    array = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
    tensor = InferInput("text_input", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return tensor


def parse_outputs(parts: Sequence[tuple[npt.NDArray[Any], npt.NDArray[Any]]], expected: int) -> EmbeddingResult:
    """Concatenate the chunks' ``embedding`` and ``num_tokens`` in order.

    Raises:
        GatewayError: the model answered with the wrong number of rows.
    """
    vectors = np.concatenate([p[0] for p in parts]).astype(np.float32, copy=False)
    counts = np.concatenate([p[1].reshape(-1) for p in parts])
    if vectors.ndim != 2 or len(vectors) != expected or len(counts) != expected:
        raise BadGatewayError("the embedding model answered with the wrong shape")
    return EmbeddingResult(vectors=vectors, token_counts=counts.astype(int).tolist())


async def _infer(client: grpcclient.InferenceServerClient, model: str, texts: Sequence[str],
                 timeout_s: float) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    async def requests() -> AsyncIterator[dict[str, Any]]:
        yield {"model_name": model, "inputs": [build_input(texts)], "outputs": list(OUTPUTS)}

    call = client.stream_infer(requests(), stream_timeout=timeout_s)
    try:
        with mapped_errors():
            async for result, error in call:
                if error is not None:
                    raise map_exception(error)
                return result.as_numpy("embedding"), result.as_numpy("num_tokens")
    finally:
        call.cancel()
    raise ServiceUnavailableError("the model server closed the stream early")


async def embed(client: grpcclient.InferenceServerClient, model: str, texts: Sequence[str],
                timeout_s: float) -> EmbeddingResult:
    """Embed ``texts`` in chunks of ``CHUNK`` sent concurrently, reassembled in order.

    Raises:
        GatewayError: Triton unavailable, timed out, or the model failed.
    """
    chunks = [texts[i:i + CHUNK] for i in range(0, len(texts), CHUNK)]
    try:
        async with asyncio.timeout(timeout_s):
            parts = await asyncio.gather(*(_infer(client, model, c, timeout_s) for c in chunks))
    except TimeoutError as exc:
        raise GatewayTimeoutError("the embedding model did not answer in time") from exc
    return parse_outputs(parts, len(texts))
