"""Liveness and readiness probes (no auth: Kubernetes calls them)."""

from __future__ import annotations

from litestar import Response, get
from litestar.datastructures import State

from gateway.catalog import ModelCatalog


@get("/health/live")
async def live() -> Response[bytes]:
    return Response(b'{"status":"ok"}', media_type="application/json")


@get("/health/ready")
async def ready(state: State) -> Response[bytes]:
    catalog: ModelCatalog = state.catalog
    if await catalog.all_ready():
        return Response(b'{"status":"ready"}', media_type="application/json")
    return Response(b'{"status":"not ready"}', media_type="application/json", status_code=503)
