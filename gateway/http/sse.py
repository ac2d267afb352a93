"""Server-sent events framed as OpenAI frames them: ``data: <json>\\n\\n``, ending ``data: [DONE]``."""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.errors import GatewayError, error_body

_encoder = msgspec.json.Encoder()

DONE = b"data: [DONE]\n\n"

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx and friends: do not buffer the stream
    "Connection": "keep-alive",
}


def encode_event(payload: Any) -> bytes:
    """One ``data:`` event."""
    return b"data: " + _encoder.encode(payload) + b"\n\n"


def error_event(exc: GatewayError | None) -> bytes:
    """An error after the stream started; never leaks an unexpected exception's text."""
    if exc is None:
        body = error_body("The server had an error while processing your request.",
                          "server_error", "internal_error")
    else:
        body = exc.body()
    return encode_event(body)
