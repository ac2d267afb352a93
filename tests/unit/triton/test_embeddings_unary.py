"""Embeddings reach Triton over unary ``ModelInfer`` (``client.infer``), never the stream: the
answer's chunks in order, errors mapped like every Triton call, the timeout, and a failed chunk
cancelling the others. The client below is the lowest seam: it returns real ``InferResult``
protobufs, as tritonclient's aio client does."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import pytest
from tritonclient.grpc import InferResult, service_pb2
from tritonclient.utils import InferenceServerException

from gateway.errors import (
    BadGatewayError,
    GatewayTimeoutError,
    InvalidRequestError,
    ServiceUnavailableError,
)
from gateway.triton.embeddings import CHUNK, embed


def _result(texts: list[bytes], dim: int = 3) -> InferResult:
    """Row i of the embedding is [len(text), i, 0...]; num_tokens is len(text) + 1."""
    pb = service_pb2.ModelInferResponse(model_name="emb", id="r")
    vectors = np.zeros((len(texts), dim), np.float32)
    vectors[:, 0] = [len(t) for t in texts]
    vectors[:, 1] = range(len(texts))
    counts = np.array([[len(t) + 1] for t in texts], np.int32)
    for name, datatype, array in (("embedding", "FP32", vectors), ("num_tokens", "INT32", counts)):
        pb.outputs.add(name=name, datatype=datatype, shape=list(array.shape))
        pb.raw_output_contents.append(array.tobytes())
    return InferResult(pb)


class UnaryOnly:
    """``infer`` answers; ``stream_infer`` fails the test. Records every call."""

    def __init__(self, fail_chunk: int | None = None, error: BaseException | None = None,
                 delay_s: float = 0.0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.cancelled = 0
        self.fail_chunk, self.error, self.delay_s = fail_chunk, error, delay_s

    async def infer(self, model_name: str, inputs: list[Any], **kwargs: Any) -> InferResult:
        index = len(self.calls)
        self.calls.append({"model": model_name, "inputs": inputs, **kwargs})
        raw = inputs[0]._get_content()
        rows, pos = [], 0
        while pos < len(raw):
            n = int.from_bytes(raw[pos:pos + 4], "little")
            rows.append(raw[pos + 4:pos + 4 + n])
            pos += 4 + n
        try:
            if index == self.fail_chunk:
                await asyncio.sleep(0)
                assert self.error is not None
                raise self.error
            await asyncio.sleep(self.delay_s)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return _result(rows)

    def stream_infer(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("embeddings must not use the gRPC stream")


async def test_one_unary_call_per_chunk_in_order() -> None:
    client = UnaryOnly()
    texts = [f"t{i}" * (1 + i % 3) for i in range(CHUNK + 5)]
    result = await embed(client, "emb", texts, 7.5)  # type: ignore[arg-type]
    assert len(client.calls) == 2
    assert [c["model"] for c in client.calls] == ["emb", "emb"]
    assert [c["client_timeout"] for c in client.calls] == [7.5, 7.5]
    assert [c["inputs"][0].shape() for c in client.calls] == [[CHUNK, 1], [5, 1]]
    assert [o.name() for o in client.calls[0]["outputs"]] == ["embedding", "num_tokens"]
    assert result.vectors[:, 0].tolist() == [len(t) for t in texts]
    assert result.vectors[:, 1].tolist() == [*range(CHUNK), *range(5)]
    assert result.token_counts == [len(t) + 1 for t in texts]


@pytest.mark.parametrize(("error", "expected"), [
    (InferenceServerException("down", status=str(grpc.StatusCode.UNAVAILABLE)), ServiceUnavailableError),
    (InferenceServerException("late", status=str(grpc.StatusCode.DEADLINE_EXCEEDED)), GatewayTimeoutError),
    (InferenceServerException("invalid request: too long", status=str(grpc.StatusCode.INTERNAL)),
     InvalidRequestError),
    (InferenceServerException("boom", status=str(grpc.StatusCode.INTERNAL)), BadGatewayError),
])
async def test_errors_are_mapped(error: BaseException, expected: type[Exception]) -> None:
    with pytest.raises(expected):
        await embed(UnaryOnly(fail_chunk=0, error=error), "emb", ["a"], 5.0)  # type: ignore[arg-type]


async def test_a_failed_chunk_cancels_the_others() -> None:
    error = InferenceServerException("down", status=str(grpc.StatusCode.UNAVAILABLE))
    client = UnaryOnly(fail_chunk=1, error=error, delay_s=30)
    with pytest.raises(ServiceUnavailableError):
        async with asyncio.timeout(5):
            await embed(client, "emb", ["x"] * (3 * CHUNK), 60.0)  # type: ignore[arg-type]
    assert len(client.calls) == 3 and client.cancelled == 2


async def test_the_whole_request_times_out_and_cancels_its_calls() -> None:
    client = UnaryOnly(delay_s=30)
    with pytest.raises(GatewayTimeoutError):
        await embed(client, "emb", ["x"] * (2 * CHUNK), 0.05)  # type: ignore[arg-type]
    assert client.cancelled == 2


async def test_missing_outputs_are_a_bad_gateway() -> None:
    class NoOutputs(UnaryOnly):
        async def infer(self, model_name: str, inputs: list[Any], **kwargs: Any) -> InferResult:
            return InferResult(service_pb2.ModelInferResponse(model_name="emb"))

    with pytest.raises(BadGatewayError):
        await embed(NoOutputs(), "emb", ["a"], 5.0)  # type: ignore[arg-type]
