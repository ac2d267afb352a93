"""Refuse new work while draining: every request but the probes gets a 503 and a closed connection.

uvicorn stops accepting connections once a shutdown starts, but a request can still arrive on
an open keep-alive connection (or in the moment before the listener closes). Running requests
are not touched: they finish within the drain deadline.
"""

from __future__ import annotations

import msgspec
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from gateway.errors import ServiceUnavailableError
from gateway.health.state import Lifecycle

_BODY = msgspec.json.encode(ServiceUnavailableError(
    "the gateway is shutting down; retry on another replica", code="shutting_down").body())
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode()),
            (b"connection", b"close"), (b"retry-after", b"1")]


class DrainGate:
    """ASGI wrapper: 503 ``shutting_down`` for requests that arrive once ``lifecycle`` is draining."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == ScopeType.HTTP and self.lifecycle.state == "draining"
                and not scope["path"].startswith("/health/")):
            await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY, "more_body": False})
            return
        await self.app(scope, receive, send)
