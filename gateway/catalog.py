"""Which models the gateway serves right now: registry entries, activation state, Triton readiness."""

from __future__ import annotations

from typing import Protocol

from gateway.backends.base import Backend
from gateway.errors import ModelNotFoundError
from gateway.registry import ModelEntry, Registry


class ActivationSource(Protocol):
    async def active_overrides(self) -> dict[str, bool]:
        """Model id -> active, as admins set it at run time (cached by the source)."""
        ...


class ModelCatalog:
    """Resolves public model ids; lists models that are active and ready."""

    def __init__(self, registry: Registry, backend: Backend,
                 activation: ActivationSource | None = None) -> None:
        self.registry = registry
        self.backend = backend
        self.activation = activation

    async def _overrides(self) -> dict[str, bool]:
        return await self.activation.active_overrides() if self.activation else {}

    async def listed(self) -> list[ModelEntry]:
        """Models that are active and whose Triton model is ready."""
        overrides = await self._overrides()
        ready = await self.backend.ready_models()
        return [m for m in self.registry.models
                if m.triton_model in ready and overrides.get(m.id, m.active)]

    async def resolve(self, model_id: str) -> ModelEntry:
        """The entry for an id that is known and active.

        Raises:
            ModelNotFoundError: unknown or inactive id.
        """
        entry = self.registry.get(model_id)
        if entry is None or not (await self._overrides()).get(entry.id, entry.active):
            raise ModelNotFoundError(model_id)
        return entry

    async def resolve_ready(self, model_id: str) -> ModelEntry:
        """Like ``resolve``, and the model must be ready (for GET /v1/models/{id}).

        Raises:
            ModelNotFoundError: unknown, inactive or not ready.
        """
        entry = await self.resolve(model_id)
        if entry.triton_model not in await self.backend.ready_models():
            raise ModelNotFoundError(model_id)
        return entry

    async def readiness(self) -> dict[str, bool]:
        """Every active model id -> whether Triton has it ready."""
        overrides = await self._overrides()
        ready = await self.backend.ready_models()
        return {m.id: m.triton_model in ready for m in self.registry.models
                if overrides.get(m.id, m.active)}
