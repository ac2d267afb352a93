"""Request context: an ``x-request-id`` on every response, and one access-log line per request.

The access log carries method, path, status, duration and request id: never bodies, message
contents, keys or images.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("chungus.access")

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with control characters escaped, so a path can never forge a log line
    (``/v1/x%0a...`` arrives percent-decoded)."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            if _VALID_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


def _context(scope: Scope) -> dict[str, Any]:
    state = scope.setdefault("state", {})
    if "request_id" not in state:
        state["request_id"] = _request_id(scope)
        state["started"] = time.perf_counter()
    return state


class RequestContextMiddleware:
    """Litestar middleware factory: assigns the request id before the handler runs."""

    def __init__(self, access_log: bool = True) -> None:
        self.access_log = access_log

    def __call__(self, app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == ScopeType.HTTP:
                _context(scope)
            await app(scope, receive, send)

        return middleware


def make_before_send(enabled: bool) -> Any:
    """A ``before_send`` hook: adds the request id header to every response (404s too) and logs."""

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope["type"] != ScopeType.HTTP:
            return
        state = _context(scope)
        headers = list(message.get("headers") or [])
        headers.append((b"x-request-id", state["request_id"].encode()))
        message["headers"] = headers
        if enabled:
            access_log.info("%s %s %d %.1fms id=%s", scope.get("method", "-"), printable(scope["path"]),
                            message["status"], (time.perf_counter() - state["started"]) * 1000,
                            state["request_id"])

    return before_send
