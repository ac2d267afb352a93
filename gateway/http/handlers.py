"""Exception handlers: every failure leaves as one OpenAI error body, through the GatewayError tree.

Litestar's own HTTP errors (unknown route, wrong method, body too large, unreadable body) are
first turned into the matching ``GatewayError``; an unexpected exception becomes a generic 500
that never shows ``str(exc)``.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException

from gateway.errors import (
    AuthenticationError,
    GatewayError,
    InternalServerError,
    InvalidRequestError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
)
from gateway.http.responses import json_response
from gateway.metrics.middleware import note_error

log = logging.getLogger("chungus.app")

AnyRequest = Request[Any, Any, Any]


def as_gateway_error(request: AnyRequest, exc: HTTPException) -> GatewayError:
    """The ``GatewayError`` for an ``HTTPException`` that Litestar raised."""
    status = exc.status_code
    path = request.url.path
    if status == 404:
        return NotFoundError(f"Unknown request URL: {request.method} {path}")
    if status == 405:
        return MethodNotAllowedError(f"Method {request.method} is not allowed for {path}")
    if status == 413:
        return PayloadTooLargeError("Request body is too large")
    if status == 415:
        return UnsupportedMediaTypeError(str(exc.detail))
    if status == 401:
        return AuthenticationError(str(exc.detail))
    if status < 500:
        return InvalidRequestError(str(exc.detail), code="invalid_request")
    return InternalServerError("The server had an error while processing your request.")


def gateway_error(_: AnyRequest, exc: GatewayError) -> Response[bytes]:
    note_error(exc)  # refusals by reason, auth failures by code
    return json_response(exc.body(), exc.status, exc.headers)


def http_error(request: AnyRequest, exc: HTTPException) -> Response[bytes]:
    error = as_gateway_error(request, exc)
    note_error(error)
    return json_response(error.body(), error.status, {**(exc.headers or {}), **error.headers})


def internal_error(request: AnyRequest, exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    error = InternalServerError("The server had an error while processing your request.")
    return json_response(error.body(), error.status)


HANDLERS = {GatewayError: gateway_error, HTTPException: http_error, Exception: internal_error}
