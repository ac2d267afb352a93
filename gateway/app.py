"""The application factory: settings + backend in, a Litestar app out; nothing happens at import."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, Request, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException

from gateway.backends.base import Backend
from gateway.catalog import ActivationSource, ModelCatalog
from gateway.errors import GatewayError, error_body
from gateway.middleware import RequestContextMiddleware, make_before_send
from gateway.registry import Registry, load_registry
from gateway.routes.admin import ADMIN_ROUTES
from gateway.routes.chat import chat_completions
from gateway.routes.embeddings import embeddings
from gateway.routes.health import live, ready
from gateway.routes.models import get_model, list_models
from gateway.security.activation import StoreActivation
from gateway.security.base import Guard, OpenGuard
from gateway.security.guard import KeyGuard
from gateway.security.limits import make_limiter
from gateway.security.store import KeyStore
from gateway.serving.chat import ChatService, ImageResolver
from gateway.serving.embeddings import EmbeddingService
from gateway.settings import Settings

log = logging.getLogger("chungus.app")

_encoder = msgspec.json.Encoder()

_HTTP_CODES = {400: "invalid_request", 401: "invalid_api_key", 404: "not_found",
               405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


def _json(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json",
                    headers=headers)


def _gateway_error(_: Request, exc: GatewayError) -> Response[bytes]:
    return _json(exc.body(), exc.status, exc.headers)


def _http_error(request: Request, exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    if status == 404:
        message = f"Unknown request URL: {request.method} {request.url.path}"
    elif status == 405:
        message = f"Method {request.method} is not allowed for {request.url.path}"
    elif status == 413:
        message = "Request body is too large"
    else:
        message = str(exc.detail)
    kind = "invalid_request_error" if status < 500 else "api_error"
    return _json(error_body(message, kind, _HTTP_CODES.get(status)), status,
                 dict(exc.headers or {}))


def _internal_error(request: Request, exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = error_body("The server had an error while processing your request.", "server_error",
                      "internal_error")
    return _json(body, 500)


def _default_backend(settings: Settings, registry: Registry) -> Backend:
    from gateway.backends.triton.client import TritonBackend  # noqa: PLC0415

    return TritonBackend(settings.triton_urls, registry,
                         idle_timeout_s=settings.triton_idle_timeout_s,
                         total_timeout_s=settings.triton_timeout_s)


def _sqlite_dir(url: str) -> None:
    """Create the folder of a SQLite database file, so a fresh checkout just works."""
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _key_guard(settings: Settings) -> tuple[KeyGuard, StoreActivation]:
    _sqlite_dir(settings.database_url)
    store = KeyStore(settings.database_url)
    limiter = make_limiter(settings.redis_url, settings.redis_fail_open,
                           prefix=settings.redis_prefix,
                           lease_ttl_s=settings.triton_timeout_s + 60)
    guard = KeyGuard(store, limiter, admin_key=settings.admin_key,
                     cache_ttl_s=settings.key_cache_ttl_s)
    return guard, StoreActivation(store, settings.key_cache_ttl_s)


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    *,
    registry: Registry | None = None,
    guard: Guard | None = None,
    activation: ActivationSource | None = None,
    images: ImageResolver | None = None,
) -> Litestar:
    """Build the gateway.

    Args:
        settings: all configuration.
        backend: the model server; default a TritonBackend on ``settings.triton_urls``.
        registry: the served models; default loaded from ``settings.registry_path``.
        guard: keys and limits; default: KeyGuard on the settings' database (and Redis) when
            ``auth_enabled``, else open.
        activation: run-time model activation; default none (registry's ``active`` flags).
        images: the image resolver for vision models.
    """
    registry = registry or load_registry(Path(settings.registry_path))
    backend = backend or _default_backend(settings, registry)
    on_startup: list[Callable[[], Any]] = [backend.start]
    on_shutdown: list[Callable[[], Any]] = [backend.close]
    routes: list[Any] = [chat_completions, embeddings, list_models, get_model, live, ready]
    keystore = None
    if guard is None and settings.auth_enabled:
        guard, store_activation = _key_guard(settings)
        keystore, activation = guard.store, activation or store_activation
        on_startup.append(guard.start)
        on_shutdown.append(guard.close)
        routes.extend(ADMIN_ROUTES)
    guard = guard or OpenGuard()
    if images is None and any(m.vision for m in registry.models):
        from gateway.multimodal import ImageService  # noqa: PLC0415

        service = ImageService(settings)
        images = service
        on_shutdown.append(service.aclose)
    catalog = ModelCatalog(registry, backend, activation)
    state = State({
        "settings": settings, "registry": registry, "backend": backend, "guard": guard,
        "catalog": catalog, "encoder": _encoder, "keystore": keystore, "activation": activation,
        "chat": ChatService(catalog, backend, guard, images),
        "embeddings": EmbeddingService(catalog, backend, guard, settings),
    })
    return Litestar(
        route_handlers=routes,
        state=state,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        middleware=[RequestContextMiddleware(access_log=settings.access_log)],
        before_send=[make_before_send(settings.access_log)],
        exception_handlers={
            GatewayError: _gateway_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
        request_max_body_size=settings.max_body_bytes,
        openapi_config=None,
        debug=False,
    )
