"""What the console works on: sessions, the admin service, the chat and embedding services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.admin.service import AdminService
from gateway.admin.usage import UsageSeries
from gateway.auth.principal import Principal
from gateway.chat.service import ChatService
from gateway.console.sessions import ConsoleSessions
from gateway.embeddings.service import EmbeddingService
from gateway.models.protocol import ModelCapabilities
from gateway.registry import ModelEntry

LiveSource = Callable[[], Any]  # the gateway's live figures (a msgspec struct)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsoleService:
    sessions: ConsoleSessions
    admin: AdminService
    usage: UsageSeries
    chat: ChatService
    embeddings: EmbeddingService
    live: LiveSource | None = None

    async def usable_models(self, principal: Principal) -> list[ModelEntry]:
        """Active, ready models this caller may use (the playground's choices)."""
        listed = await self.admin.catalog.listed()
        allowed = principal.allowed_models
        return [m for m in listed if allowed is None or m.id in allowed]

    async def model_rows(self) -> list[dict[str, Any]]:
        """Every registry model: kind, contract, activation, readiness, capabilities."""
        overrides = await self.admin.activation.active_overrides()
        ready = await self.admin.catalog.backend.ready_models()
        return [{"id": m.id, "kind": m.kind, "contract": m.contract, "triton_model": m.triton_model,
                 "active": overrides.get(m.id, m.active), "ready": m.triton_model in ready,
                 "capabilities": capabilities(m)} for m in self.admin.catalog.registry.models]


def capabilities(entry: ModelEntry) -> list[str]:
    """What a model supports, in words, for the Models page."""
    if entry.kind == "embedding":
        out = [f"embeddings, {entry.embedding_dim or '?'} dimensions"]
        if entry.supports_dimensions:
            out.append("dimensions parameter")
        if entry.max_input_tokens:
            out.append(f"{entry.max_input_tokens} input tokens")
        return out
    out = ["chat", "streaming", f"context {entry.context_length} tokens",
           f"max_tokens up to {entry.max_tokens_limit}"]
    if entry.vision:
        out.insert(1, f"vision (up to {entry.max_images} images)")
    if entry.tool_parser:
        out.insert(1, f"tools ({entry.tool_parser} format)")
    supports = ModelCapabilities.of(entry)
    if supports.structured_outputs:
        out.append("structured outputs")
    if supports.logprobs:
        out.append("logprobs")
    return out
