"""What the admin API works on: the key store, the key cache, model activation, the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.activation import StoreActivation
from gateway.auth.guard import KeyGuard
from gateway.auth.keys import digest, display_prefix, generate_key
from gateway.auth.store import KeyRecord, KeyStore, new_key_id
from gateway.catalog import ModelCatalog
from gateway.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class AdminService:
    keystore: KeyStore
    guard: KeyGuard
    activation: StoreActivation
    catalog: ModelCatalog

    async def create_key(self, fields: dict[str, object]) -> tuple[str, KeyRecord]:
        """A new key with ``fields`` (``KeyFields.values()``); returns the secret (shown once)."""
        key = generate_key()
        record = KeyRecord(id=new_key_id(), digest=digest(key), prefix=display_prefix(key),
                           **fields)  # type: ignore[arg-type]  # KeyFields' names and types are KeyRecord's
        await self.keystore.create_key(record)
        return key, record

    async def key(self, key_id: str) -> KeyRecord:
        """Raises ``NotFoundError`` for an unknown id."""
        record = await self.keystore.get(key_id)
        if record is None:
            raise NotFoundError(f"No API key with id '{key_id}'", param="key_id",
                                code="key_not_found")
        return record

    async def update_key(self, key_id: str, fields: dict[str, object]) -> KeyRecord:
        """Change ``fields`` of a key (this replica forgets its cached copy at once)."""
        await self.key(key_id)
        if fields:
            await self.keystore.update_key(key_id, **fields)
            self.guard.forget(key_id)
        return await self.key(key_id)

    async def set_active(self, model_id: str, active: bool) -> None:
        """Raises ``NotFoundError`` for a model not in the registry."""
        if self.catalog.registry.get(model_id) is None:
            raise NotFoundError(f"Model '{model_id}' is not in the registry", param="model",
                                code="model_not_found")
        await self.activation.set_active(model_id, active)
