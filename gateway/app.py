"""The application factory: settings -> services -> a Litestar app; nothing happens at import.

``build_services`` (gateway.services) makes the typed container; ``build_app`` turns it into
routes, dependencies and hooks. ``create_app`` does both.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.handlers import HTTPRouteHandler

from gateway.admin.route import admin_routes
from gateway.admin.usage import usage_routes
from gateway.auth.dependencies import auth_dependencies
from gateway.auth.principal import Guard
from gateway.backends.base import Backend
from gateway.catalog import ActivationSource
from gateway.chat.route import chat_routes
from gateway.chat.service import ImageResolver
from gateway.completions.route import completion_routes
from gateway.console.route import console_routes
from gateway.embeddings.route import embedding_routes
from gateway.health.route import health_routes
from gateway.http.body import BodyReader
from gateway.http.handlers import HANDLERS
from gateway.http.middleware import RequestContextMiddleware, make_before_send
from gateway.metrics.exposition import metrics_route
from gateway.metrics.middleware import MetricsMiddleware
from gateway.models.route import model_routes
from gateway.openapi import openapi_route
from gateway.registry import Registry
from gateway.responses.route import responses_routes
from gateway.services import Services, build_services
from gateway.settings import Settings


def build_app(services: Services) -> Litestar:
    """The Litestar app over ``services``: routes, dependencies, error handlers, hooks.

    Each feature's routes are built over the one service they use; the only dependency resolved
    per request is the caller's ``principal`` (or ``admin``), before any body is read.
    """
    settings = services.settings
    reader = BodyReader(settings.body_timeout_s)
    routes: list[HTTPRouteHandler] = [
        *chat_routes(services.chat, reader),
        *completion_routes(services.completions, reader),
        *embedding_routes(services.embeddings, reader),
        *model_routes(services.catalog),
        *health_routes(services.lifecycle, services.catalog),
    ]
    if services.admin is not None:
        routes.extend(admin_routes(services.admin))
    if services.responses is not None:
        routes.extend(responses_routes(services.responses, reader))
    if services.usage is not None:
        routes.extend(usage_routes(services.usage))
    routes.append(openapi_route(routes))
    observability = _observability(services, routes)  # after the OpenAPI document: not in it
    console = console_routes(services.console, reader) if services.console is not None else []

    async def started() -> None:
        if services.lifecycle.state == "starting":  # a stop signal during startup wins
            services.lifecycle.state = "serving"

    async def stopping() -> None:
        services.lifecycle.state = "draining"

    return Litestar(
        route_handlers=[*routes, *console],
        dependencies=auth_dependencies(services.guard),
        on_startup=[*services.on_startup, started],
        on_shutdown=[stopping, *services.on_shutdown],
        middleware=[RequestContextMiddleware(access_log=settings.access_log), *observability],
        before_send=[make_before_send(settings.access_log)],
        exception_handlers=HANDLERS,  # type: ignore[arg-type]  # Litestar's handler map is invariant
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        debug=False,
    )


def _observability(services: Services, routes: list[HTTPRouteHandler]) -> list[Any]:
    """Tracing and metrics middleware (outermost first); ``GET /metrics`` on the main port."""
    settings = services.settings
    layers: list[Any] = []
    if services.tracing is not None:
        from gateway.tracing.middleware import TracingMiddleware  # OpenTelemetry only when on

        layers.append(TracingMiddleware(services.tracing))
    if settings.metrics_enabled:
        layers.append(MetricsMiddleware(services.metrics))
        if settings.metrics_port is None:
            routes.append(metrics_route(services.metrics))
    return layers


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    *,
    registry: Registry | None = None,
    guard: Guard | None = None,
    activation: ActivationSource | None = None,
    images: ImageResolver | None = None,
) -> Litestar:
    """Build the services and the app (see ``build_services`` for the keywords)."""
    return build_app(build_services(settings, backend=backend, registry=registry, guard=guard,
                                    activation=activation, images=images))
