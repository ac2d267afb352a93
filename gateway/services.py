"""The typed services container: everything a request needs, built once from the settings.

``build_services`` is the composition root (vLLM's ``init_app_state``): the only place that
knows which implementation serves each seam. ``gateway.app.build_app`` turns the container into
Litestar dependencies; features receive the one service they need, never the container.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.admin.service import AdminService
from gateway.admin.usage import UsageSeries
from gateway.auth.activation import StoreActivation
from gateway.auth.guard import KeyGuard
from gateway.auth.principal import Guard, OpenGuard
from gateway.auth.store import KeyStore, ensure_sqlite_dir
from gateway.auth.usage import CountingGuard
from gateway.backends.base import Backend
from gateway.catalog import ActivationSource, ModelCatalog
from gateway.chat.service import ChatService, ImageResolver
from gateway.completions.service import CompletionService
from gateway.console.service import ConsoleService
from gateway.console.sessions import ConsoleSessions
from gateway.embeddings.service import EmbeddingLimits, EmbeddingService
from gateway.health.state import Lifecycle
from gateway.limits import make_limiter
from gateway.metrics import Metrics
from gateway.registry import Registry, load_registry
from gateway.responses.service import ResponsesService
from gateway.responses.store import ResponseStore
from gateway.settings import Settings
from gateway.tokens import Tokenizers

if TYPE_CHECKING:
    from gateway.tracing.setup import Tracing

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    settings: Settings
    registry: Registry
    backend: Backend
    guard: Guard
    catalog: ModelCatalog
    tokens: Tokenizers
    chat: ChatService
    completions: CompletionService
    embeddings: EmbeddingService
    lifecycle: Lifecycle
    metrics: Metrics = field(default_factory=Metrics)  # Prometheus families, live figures
    tracing: Tracing | None = None  # None: tracing off (otel_endpoint unset)
    admin: AdminService | None = None  # None when keys are off
    responses: ResponsesService | None = None  # set by build_services
    usage: UsageSeries | None = None  # usage over time; None when keys are off
    console: ConsoleService | None = None  # the web console; None when keys or it are off
    on_startup: tuple[Hook, ...] = field(default=())
    on_shutdown: tuple[Hook, ...] = field(default=())


def _triton_backend(settings: Settings, tokens: Tokenizers, metrics: Metrics) -> Backend:
    from gateway.triton.backend import TritonBackend  # tritonclient loads only when used
    from gateway.triton.routing import Router

    router = Router(settings.triton_routing, prefix_chars=settings.triton_affinity_prefix_chars,
                    load_factor=settings.triton_affinity_load_factor)
    backend = TritonBackend(settings.triton_urls, tokens, idle_timeout_s=settings.triton_idle_timeout_s,
                         total_timeout_s=settings.triton_timeout_s,
                         connect_timeout_s=settings.triton_connect_timeout_s, router=router,
                         resolve_s=settings.triton_dns_interval_s)
    metrics.watch_endpoints(backend.endpoints.health)
    return backend


def _key_guard(settings: Settings) -> KeyGuard:
    ensure_sqlite_dir(settings.database_url)
    limiter = make_limiter(settings.redis_url, settings.redis_fail_open,
                           prefix=settings.redis_prefix,
                           lease_ttl_s=settings.triton_timeout_s + 60)
    return KeyGuard(KeyStore(settings.database_url), limiter, admin_key=settings.admin_key,
                    cache_ttl_s=settings.key_cache_ttl_s)


def _observed(settings: Settings, backend: Backend, metrics: Metrics,
              startup: list[Hook], shutdown: list[Hook]) -> tuple[Backend, Tracing | None]:
    """The backend the features call: metered when metrics are on, traced when tracing is."""
    served = backend
    if settings.metrics_enabled:
        from gateway.metrics.backend import MeteredBackend

        served = MeteredBackend(served, metrics)
        startup.append(metrics.start)
        shutdown.append(metrics.close)
    tracing = None
    if settings.otel_endpoint:
        from gateway.tracing.backend import TracedBackend  # OpenTelemetry loads only when on
        from gateway.tracing.setup import Tracing

        tracing = Tracing(settings.otel_endpoint, settings.otel_service_name)
        served = TracedBackend(served)
        shutdown.append(tracing.close)
    return served, tracing


def build_services(
    settings: Settings,
    *,
    backend: Backend | None = None,
    registry: Registry | None = None,
    guard: Guard | None = None,
    activation: ActivationSource | None = None,
    images: ImageResolver | None = None,
) -> Services:
    """Build every service from ``settings``; each keyword replaces one default (tests use them).

    Args:
        settings: all configuration.
        backend: the model server; default a TritonBackend on ``settings.triton_urls``.
        registry: the served models; default loaded from ``settings.registry_path``.
        guard: keys and limits; default a KeyGuard on the settings' database (and Redis) when
            ``auth_enabled``, else open.
        activation: run-time model activation; default the key store's, when keys are on.
        images: the image resolver for vision models; default an ImageService when the
            registry has a vision model.
    """
    registry = registry or load_registry(Path(settings.registry_path))
    tokens = Tokenizers(registry.base)
    metrics = Metrics(host=settings.host, port=settings.metrics_port)
    backend = backend or _triton_backend(settings, tokens, metrics)
    startup: list[Hook] = [backend.start]
    shutdown: list[Hook] = [backend.close]
    served, tracing = _observed(settings, backend, metrics, startup, shutdown)
    admin: AdminService | None = None
    if guard is None and settings.auth_enabled:
        key_guard = _key_guard(settings)
        store_activation = StoreActivation(key_guard.store, settings.key_cache_ttl_s)
        activation = activation or store_activation
        startup.append(key_guard.start)
        shutdown.append(key_guard.close)
        key_guard.usage.retention_days = settings.usage_retention_days
        guard = CountingGuard(key_guard, key_guard.usage)  # usage per key, model and minute
        admin_catalog = ModelCatalog(registry, backend, activation)
        admin = AdminService(key_guard.store, key_guard, store_activation, admin_catalog)
    if images is None and any(m.vision for m in registry.models):
        from gateway.images import ImageService  # Pillow and httpx only for vision models

        image_service = ImageService(settings, metrics=metrics)
        images = image_service
        shutdown.append(image_service.aclose)
    guard = guard or OpenGuard()
    store: ResponseStore | None = None
    if settings.responses_store:
        ensure_sqlite_dir(settings.database_url)
        store = ResponseStore(settings.database_url, settings.responses_retention_s)
        startup.append(store.start)
        shutdown.append(store.close)
    catalog = ModelCatalog(registry, backend, activation)
    limits = EmbeddingLimits(settings.embedding_max_inputs, settings.embedding_max_total_tokens,
                             settings.embedding_truncate)
    services = Services(
        settings=settings, registry=registry, backend=backend, guard=guard, catalog=catalog,
        tokens=tokens, chat=ChatService(catalog, served, guard, tokens, images),
        completions=CompletionService(catalog, served, guard, tokens),
        embeddings=EmbeddingService(catalog, served, guard, tokens, limits),
        lifecycle=Lifecycle(), metrics=metrics, tracing=tracing, admin=admin, on_startup=tuple(startup),
        on_shutdown=tuple(shutdown))
    services = replace(services, responses=ResponsesService(services.chat, store))
    return _with_console(services)


def _with_console(services: Services) -> Services:
    """Usage series and the web console, over the key store (only when keys are on)."""
    admin = services.admin
    if admin is None:
        return services
    usage = UsageSeries(admin.keystore, admin.guard)
    if not services.settings.console_enabled:
        return replace(services, usage=usage)
    sessions = ConsoleSessions(admin.keystore, admin.guard, services.settings.console_session_ttl_s)
    console = ConsoleService(sessions=sessions, admin=admin, usage=usage, chat=services.chat,
                             embeddings=services.embeddings, live=services.metrics.live)
    return replace(services, usage=usage, console=console)
