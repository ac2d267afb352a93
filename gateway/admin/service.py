"""What the admin API works on: the key store, the key cache, model activation, the catalog."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.activation import StoreActivation
from gateway.auth.guard import KeyGuard
from gateway.auth.store import KeyStore
from gateway.catalog import ModelCatalog


@dataclass(frozen=True, slots=True)
class AdminService:
    keystore: KeyStore
    guard: KeyGuard
    activation: StoreActivation
    catalog: ModelCatalog
