"""Run-time model activation, stored in the key store's database and cached briefly per replica."""

from __future__ import annotations

import logging
import time

from gateway.auth.store import KeyStore
from gateway.errors import ServiceUnavailableError

log = logging.getLogger("chungus.activation")


class StoreActivation:
    """An ``ActivationSource``: admins' activate/deactivate, seen by every replica within the TTL.

    If the database fails when the cache is due, the last known states stay in force.
    """

    def __init__(self, store: KeyStore, ttl_s: float = 5.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cached: tuple[float, dict[str, bool]] | None = None

    async def active_overrides(self) -> dict[str, bool]:
        now = time.monotonic()
        if self._cached is None or now - self._cached[0] > self.ttl_s:
            try:
                self._cached = (now, await self.store.model_states())
            except Exception as exc:
                if self._cached is None:
                    raise ServiceUnavailableError("Model states are unavailable; try again "
                                                  "shortly", code="key_store_unavailable") from exc
                log.warning("model states unavailable, keeping the last known: %s",
                            type(exc).__name__)
                self._cached = (now, self._cached[1])
        return self._cached[1]

    async def set_active(self, model_id: str, active: bool) -> None:
        await self.store.set_model_active(model_id, active)
        self._cached = None
