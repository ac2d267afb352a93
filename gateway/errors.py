"""One exception tree for everything the gateway refuses, rendered as one OpenAI error body.

    GatewayError                      (status, type, code, param)
    ├── InvalidRequestError           400 invalid_request_error
    │   └── PayloadTooLargeError      413
    ├── AuthenticationError           401 invalid_api_key
    ├── PermissionDeniedError         403
    ├── NotFoundError                 404
    │   └── ModelNotFoundError        404 model_not_found
    ├── MethodNotAllowedError         405
    ├── RequestTimeoutError           408 (the body came too slowly)
    ├── UnsupportedMediaTypeError     415
    ├── RateLimitError                429 rate_limit_exceeded
    ├── ClientClosedRequestError      499 (nobody reads it: the client left)
    ├── InternalServerError           500 internal_error (never the exception's text)
    └── BackendError                  5xx
        ├── BadGatewayError           502 (the backend broke the contract)
        ├── ServiceUnavailableError   503 (the backend is down or not ready)
        └── GatewayTimeoutError       504 (the backend stopped answering)

Every handler emits ``{"error": {"message", "type", "param", "code"}}`` and never
puts ``str(exc)`` of an unexpected exception on the wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class GatewayError(Exception):
    """Base of every error that reaches a client as an OpenAI error body."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The OpenAI error body for this error."""
        return error_body(self.message, self.type, self.code, self.param)


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """Build ``{"error": {...}}`` exactly as OpenAI shapes it."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class PayloadTooLargeError(InvalidRequestError):
    status = 413
    default_code = "request_too_large"


class AuthenticationError(GatewayError):
    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"
    default_code = "model_not_allowed"


class NotFoundError(GatewayError):
    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"Model '{model}' not found or not active", param="model")


class MethodNotAllowedError(GatewayError):
    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class RequestTimeoutError(GatewayError):
    status = 408
    type = "invalid_request_error"
    default_code = "request_timeout"


class UnsupportedMediaTypeError(GatewayError):
    status = 415
    type = "invalid_request_error"
    default_code = "unsupported_media_type"


class ClientClosedRequestError(GatewayError):
    status = 499  # nginx's convention; shows in the access log only
    type = "invalid_request_error"
    default_code = "client_closed_request"


class InternalServerError(GatewayError):
    status = 500
    type = "server_error"
    default_code = "internal_error"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class BackendError(GatewayError):
    status = 500
    type = "api_error"
    default_code = "backend_error"


class BadGatewayError(BackendError):
    status = 502
    default_code = "bad_gateway"


class ServiceUnavailableError(BackendError):
    status = 503
    default_code = "service_unavailable"


class GatewayTimeoutError(BackendError):
    status = 504
    default_code = "timeout"
