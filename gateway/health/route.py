"""Probes (no key: Kubernetes calls them).

- ``/health/live``: the process answers.
- ``/health/ready``: this gateway can serve (started, not draining). It does not wait for
  models: one model that fails to load must not take every replica out of its Service, and
  ``/v1/models`` says which models are up.
- ``/health/models``: 200 when every active model is ready in Triton, else 503; the body maps
  each active model to its readiness (for ``make run``, tests and dashboards).
"""

from __future__ import annotations

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from gateway.catalog import ModelCatalog
from gateway.health.state import Lifecycle
from gateway.http.responses import json_response


@get("/health/live")
async def live() -> Response[bytes]:
    return Response(b'{"status":"ok"}', media_type="application/json")


def health_routes(lifecycle: Lifecycle, catalog: ModelCatalog) -> list[HTTPRouteHandler]:
    """The probes over this gateway's lifecycle and its model catalog."""

    @get("/health/ready")
    async def ready() -> Response[bytes]:
        if lifecycle.serving:
            return Response(b'{"status":"ready"}', media_type="application/json")
        return json_response({"status": lifecycle.state}, 503)

    @get("/health/models")
    async def models() -> Response[bytes]:
        states = await catalog.readiness()
        status = 200 if states and all(states.values()) else 503
        return json_response({"status": "ready" if status == 200 else "not ready",
                              "models": states}, status)

    return [live, ready, models]
