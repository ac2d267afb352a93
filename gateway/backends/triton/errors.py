"""Translate tritonclient / gRPC failures into the gateway's error tree (only here)."""

from __future__ import annotations

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


def translate_error(exc: BaseException) -> GatewayError:
    """A gRPC or tritonclient exception -> the error the client sees."""
    code = getattr(exc, "code", None)
    status = code() if callable(code) else None
    if isinstance(exc, InferenceServerException):
        status_text = exc.status() or ""
        if "UNAVAILABLE" in status_text:
            status = grpc.StatusCode.UNAVAILABLE
        elif "DEADLINE" in status_text:
            status = grpc.StatusCode.DEADLINE_EXCEEDED
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return ServiceUnavailableError("the model server is unavailable")
    if status == grpc.StatusCode.DEADLINE_EXCEEDED:
        return GatewayTimeoutError("the model server did not finish in time")
    if status == grpc.StatusCode.NOT_FOUND:
        return ServiceUnavailableError("the model is not loaded on the model server",
                                       code="model_not_ready")
    return BadGatewayError("the model server failed the request")


def translate_response_error(error: InferenceServerException) -> GatewayError:
    """An error carried inside a stream response (the model refused or failed the request)."""
    message = error.message() or ""
    lowered = message.lower()
    if any(marker in lowered for marker in _CLIENT_MARKERS):
        code = "context_length_exceeded" if "context window" in lowered else None
        return InvalidRequestError(message.split("invalid request:", 1)[-1].strip(), code=code)
    if "not healthy" in lowered or "unavailable" in lowered:
        return ServiceUnavailableError("the model is temporarily unavailable")
    return BadGatewayError("the model failed to generate a response")
