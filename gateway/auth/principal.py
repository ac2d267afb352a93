"""The guard seam: who is calling, may they use this model, and may they spend this much now."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from gateway.registry import ModelEntry


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller."""

    key_id: str | None = None
    name: str = "anonymous"
    admin: bool = False
    allowed_models: frozenset[str] | None = None  # None: every model
    rpm: int | None = None
    tpm: int | None = None
    max_concurrent: int | None = None


class Admission(Protocol):
    """A granted request: its rate-limit headers, and the hook that reconciles real usage."""

    headers: dict[str, str]

    async def finish(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Release concurrency, reconcile reserved tokens with real usage; idempotent."""
        ...


class Guard(Protocol):
    """Authentication, model permission and rate limits."""

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        """Raises ``AuthenticationError`` for a missing, malformed, unknown, expired or revoked key,
        ``RateLimitError`` when ``client`` (an address) failed too often."""
        ...

    async def admit(
        self, principal: Principal, entry: ModelEntry, reserve_tokens: int
    ) -> Admission:
        """Raises ``PermissionDeniedError`` (model) or ``RateLimitError`` (limits, with headers)."""
        ...


@dataclass(slots=True)
class OpenAdmission:
    headers: dict[str, str] = field(default_factory=dict)

    async def finish(self, prompt_tokens: int, completion_tokens: int) -> None:
        return None


class OpenGuard:
    """No keys, no limits: for local development with ``auth_enabled=False``."""

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Principal:
        return Principal(admin=True)

    async def admit(
        self, principal: Principal, entry: ModelEntry, reserve_tokens: int
    ) -> Admission:
        return OpenAdmission()
