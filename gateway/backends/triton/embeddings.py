"""Embeddings over Triton's gRPC stream: strings [n, 1] in, ``embedding`` [n, dim] and ``num_tokens`` out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.utils import InferenceServerException

from gateway.backends.base import EmbeddingResult
from gateway.backends.triton.errors import translate_error, translate_response_error
from gateway.errors import GatewayTimeoutError

CHUNK = 64  # strings per Triton request; the model's dynamic batcher merges requests


def _request(model: str, texts: Sequence[str], request_id: str) -> dict[str, Any]:
    array = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
    tensor = InferInput("text_input", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array)
    return {"model_name": model, "inputs": [tensor], "request_id": request_id,
            "outputs": [InferRequestedOutput("embedding"), InferRequestedOutput("num_tokens")]}


async def embed(client: grpcclient.InferenceServerClient, model: str, texts: Sequence[str],
                timeout_s: float) -> EmbeddingResult:
    """Embed ``texts``, split into chunks sent on one stream and reassembled in order.

    Raises:
        GatewayError: Triton unavailable, timed out, or the model failed.
    """
    chunks = [texts[i:i + CHUNK] for i in range(0, len(texts), CHUNK)]

    async def requests() -> AsyncIterator[dict[str, Any]]:
        for i, chunk in enumerate(chunks):
            yield _request(model, chunk, str(i))

    parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    call = client.stream_infer(requests())
    try:
        async with asyncio.timeout(timeout_s):
            async for result, error in call:
                if error is not None:
                    raise translate_response_error(error)
                idx = int(result.get_response().id)
                parts[idx] = (result.as_numpy("embedding"), result.as_numpy("num_tokens"))
                if len(parts) == len(chunks):
                    break
    except TimeoutError as exc:
        raise GatewayTimeoutError("the embedding model did not answer in time") from exc
    except (grpc.RpcError, InferenceServerException) as exc:
        raise translate_error(exc) from exc
    finally:
        call.cancel()
    vectors = np.concatenate([parts[i][0] for i in range(len(chunks))]).astype(np.float32)
    counts = np.concatenate([parts[i][1].reshape(-1) for i in range(len(chunks))])
    return EmbeddingResult(vectors=vectors, token_counts=[int(c) for c in counts])
