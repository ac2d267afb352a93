"""A server span per request, the child of the client's W3C ``traceparent`` when it sent one.

The span is named by method and route template and carries the status; ``TracedBackend`` adds
the model, the token counts and the finish reason. No prompt, key or image goes into a span.
"""

from __future__ import annotations

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.tracing.setup import Tracing

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = (b"traceparent", b"tracestate")


def client_context(scope: Scope) -> Context | None:
    """The trace context the client sent (``traceparent``, ``tracestate``), if any."""
    carrier: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        if name in _TRACE_HEADERS:
            carrier[name.decode()] = value.decode("latin-1")
    return _PROPAGATOR.extract(carrier) if carrier else None


class TracingMiddleware:
    """Litestar middleware factory: one server span around each matched route."""

    def __init__(self, tracing: Tracing) -> None:
        self.tracer = tracing.tracer

    def __call__(self, app: ASGIApp) -> ASGIApp:
        tracer = self.tracer

        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            method = scope.get("method", "GET")
            route = scope.get("path_template") or "unmatched"
            attributes = {"http.request.method": method, "http.route": route}
            with tracer.start_as_current_span(f"{method} {route}", context=client_context(scope),
                                              kind=SpanKind.SERVER, attributes=attributes) as span:

                async def traced_send(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            span.set_status(Status(StatusCode.ERROR))
                    await send(message)

                await app(scope, receive, traced_send)

        return middleware
