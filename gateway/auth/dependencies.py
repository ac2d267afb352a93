"""Authentication as Litestar dependencies: a typed ``Principal`` before any body is read.

Handlers declare ``principal: Principal`` (any valid key) or ``admin: Principal`` (an admin
key). Litestar resolves dependencies before the handler runs, and handlers read the body only
after that, so an unauthenticated client cannot make the gateway buffer a large body.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import Provide

from gateway.auth.principal import Guard, Principal
from gateway.errors import PermissionDeniedError


def auth_dependencies(guard: Guard) -> dict[str, Provide]:
    """The ``principal`` and ``admin`` dependencies over ``guard``."""

    async def principal(request: Request[Any, Any, Any]) -> Principal:
        return await guard.authenticate(request.headers.get("authorization"), _client(request))

    async def admin(request: Request[Any, Any, Any]) -> Principal:
        who = await guard.authenticate(request.headers.get("authorization"), _client(request))
        if not who.admin:
            raise PermissionDeniedError("This endpoint needs an admin key", code="admin_required")
        return who

    return {"principal": Provide(principal), "admin": Provide(admin)}


def _client(request: Request[Any, Any, Any]) -> str | None:
    # The peer address: behind a proxy that is the proxy, which then shares one failure budget
    # (a forwarded header is not trusted, since any client can send one).
    return request.client.host if request.client else None
