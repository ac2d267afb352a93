"""The application factory: settings -> services -> a Litestar app; nothing happens at import.

``build_services`` (gateway.services) makes the typed container; ``build_app`` turns it into
routes, dependencies and hooks. ``create_app`` does both.
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar
from litestar.di import Provide

from gateway.admin.route import ADMIN_ROUTES
from gateway.auth.dependencies import auth_dependencies
from gateway.auth.principal import Guard
from gateway.backends.base import Backend
from gateway.catalog import ActivationSource
from gateway.chat.route import chat_completions
from gateway.chat.service import ImageResolver
from gateway.embeddings.route import embeddings
from gateway.health.route import live, models, ready
from gateway.http.body import BodyReader
from gateway.http.handlers import HANDLERS
from gateway.http.middleware import RequestContextMiddleware, make_before_send
from gateway.models.route import get_model, list_models
from gateway.openapi import openapi_route
from gateway.registry import Registry
from gateway.services import Services, build_services
from gateway.settings import Settings


def _value(value: object) -> Provide:
    async def provide() -> Any:
        return value

    return Provide(provide, use_cache=True)


def build_app(services: Services) -> Litestar:
    """The Litestar app over ``services``: routes, dependencies, error handlers, hooks."""
    settings = services.settings
    routes: list[Any] = [chat_completions, embeddings, list_models, get_model, live, ready, models]
    dependencies = {
        **auth_dependencies(services.guard),
        "chat": _value(services.chat),
        "embedder": _value(services.embeddings),
        "catalog": _value(services.catalog),
        "lifecycle": _value(services.lifecycle),
        "reader": _value(BodyReader(settings.body_timeout_s)),
    }
    if services.admin is not None:
        routes.extend(ADMIN_ROUTES)
        dependencies["admin_service"] = _value(services.admin)
    routes.append(openapi_route(routes))

    async def started() -> None:
        if services.lifecycle.state == "starting":  # a stop signal during startup wins
            services.lifecycle.state = "serving"

    async def stopping() -> None:
        services.lifecycle.state = "draining"

    return Litestar(
        route_handlers=routes,
        dependencies=dependencies,
        on_startup=[*services.on_startup, started],
        on_shutdown=[stopping, *services.on_shutdown],
        middleware=[RequestContextMiddleware(access_log=settings.access_log)],
        before_send=[make_before_send(settings.access_log)],
        exception_handlers=HANDLERS,  # type: ignore[arg-type]  # Litestar's handler map is invariant
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        debug=False,
    )


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
