"""Per-request recording: route template, model, status, duration, requests in flight.

``MetricsMiddleware`` wraps every matched route. It keeps a ``RequestRecord`` in a context
variable for the request's task, where the layers below leave what only they know: the model
(``MeteredBackend``) and the error code of a refusal (the error handlers, ``note_error``). When
the response has been sent (a whole stream included), it records everything once.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.metrics.recorder import Metrics

_CLIENT_GONE = "499"  # no response started: the client left first (nginx's code)


class RequestRecord:
    """What one request leaves for its metrics; filled in by the layers that know it."""

    __slots__ = ("code", "model", "started", "status")

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.model = ""
        self.status = 0
        self.code: str | None = None


_current: ContextVar[RequestRecord | None] = ContextVar("chungus_request", default=None)


def current_request() -> RequestRecord | None:
    """The record of the request this task serves, when metrics are on."""
    return _current.get()


# The key limiter's 429s share one code; their message says which limit refused.
_LIMIT_REASONS = (("Rate limit reached for requests", "requests"),
                  ("Rate limit reached for tokens", "tokens"),
                  ("Too many concurrent requests", "concurrency"),
                  ("Request needs", "too_large"))


def refusal_reason(error: GatewayError) -> str:
    """The label of a refusal: which limit for the key limiter's 429s, else the error code."""
    if error.code == "rate_limit_exceeded":
        for prefix, reason in _LIMIT_REASONS:
            if error.message.startswith(prefix):
                return reason
    return error.code or error.type


def note_error(error: GatewayError) -> None:
    """Called by the error handlers: keeps the error's reason for the request's metrics."""
    record = _current.get()
    if record is not None:
        record.code = refusal_reason(error)


class MetricsMiddleware:
    """Litestar middleware factory over one ``Metrics``."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def __call__(self, app: ASGIApp) -> ASGIApp:
        metrics = self.metrics

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            record = RequestRecord()
            token = _current.set(record)
            route = scope.get("path_template") or "unmatched"
            done = False

            def finish() -> None:
                nonlocal done
                done = True
                status = str(record.status) if record.status else _CLIENT_GONE
                metrics.request_finished(route, record, status, time.perf_counter() - record.started)

            async def metered_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    record.status = message["status"]
                elif message["type"] == "http.response.body" and not message.get("more_body"):
                    finish()  # before the last byte leaves: a client that saw it sees the count
                await send(message)

            metrics.request_started(route)
            try:
                await app(scope, receive, metered_send)
            finally:
                _current.reset(token)
                if not done:  # the client left, or nothing was sent
                    finish()

        return middleware
