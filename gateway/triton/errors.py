"""The one place where tritonclient and gRPC failures become the gateway's errors.

Like httpx's ``map_httpcore_exceptions``: every Triton call runs inside ``mapped_errors()``,
and errors a model sends inside a stream go through ``map_exception`` too, so no other module
knows what a ``grpc.RpcError`` or an ``InferenceServerException`` is.

    gRPC UNAVAILABLE, CANCELLED        -> 503 service_unavailable
    gRPC DEADLINE_EXCEEDED             -> 504 timeout
    gRPC NOT_FOUND                     -> 503 model_not_ready
    the model's own error:
        "invalid request: ..."         -> 400 (the caller's fault; message kept)
        "... context window ...", TensorRT-LLM's "exceeds maximum input length",
        "should not exceed max_seq_len" -> 400 context_length_exceeded
        "not healthy" / "unavailable"  -> 503
        anything else                  -> 502 (message not shown: it may hold internals)
    any other gRPC status              -> 502
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from tritonclient.utils import InferenceServerException

from gateway.errors import (
    BadGatewayError,
    GatewayError,
    GatewayTimeoutError,
    InvalidRequestError,
    ServiceUnavailableError,
)

# Our reference models prefix the errors that are the caller's fault; these become 400s.
_CLIENT_MARKERS = ("invalid request:", "context window")
# TensorRT-LLM's words for a prompt that is too long (the executor; the LLM API), should one
# pass the gateway's own check (a tokenizer that differs from the engine's).
_TOO_LONG_MARKERS = ("context window", "exceeds maximum input length",
                     "should not exceed max_seq_len")
# Statuses with which Triton reports what the model itself said (not the transport).
_MODEL_STATUSES = (None, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN,
                   grpc.StatusCode.INVALID_ARGUMENT)


def _status(exc: BaseException) -> grpc.StatusCode | None:
    if isinstance(exc, InferenceServerException):
        text = exc.status() or ""
        return next((code for code in grpc.StatusCode if text.endswith(code.name)), None)
    code = getattr(exc, "code", None)
    if callable(code):
        result = code()
        return result if isinstance(result, grpc.StatusCode) else None
    return None


def map_exception(exc: BaseException) -> GatewayError:
    """A gRPC or tritonclient exception (raised, or carried in a stream response) -> our error."""
    status = _status(exc)
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return ServiceUnavailableError("the model server is unavailable")
    if status == grpc.StatusCode.DEADLINE_EXCEEDED:
        return GatewayTimeoutError("the model server did not finish in time")
    if status == grpc.StatusCode.NOT_FOUND:
        return ServiceUnavailableError("the model is not loaded on the model server",
                                       code="model_not_ready")
    if isinstance(exc, InferenceServerException) and status in _MODEL_STATUSES:
        return _model_error(exc.message() or "")
    return BadGatewayError("the model server failed the request")


def _model_error(message: str) -> GatewayError:
    lowered = message.lower()
    if any(marker in lowered for marker in _TOO_LONG_MARKERS):
        return InvalidRequestError(message.split("invalid request:", 1)[-1].strip(),
                                   param="messages", code="context_length_exceeded")
    if any(marker in lowered for marker in _CLIENT_MARKERS):
        return InvalidRequestError(message.split("invalid request:", 1)[-1].strip())
    if "not healthy" in lowered or "unavailable" in lowered:
        return ServiceUnavailableError("the model is temporarily unavailable")
    return BadGatewayError("the model failed to generate a response")


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """Run Triton calls inside this: their exceptions leave as ``GatewayError``s."""
    try:
        yield
    except (grpc.RpcError, InferenceServerException) as exc:
        raise map_exception(exc) from exc
