"""OpenAI model list wire structs, as the API reference shows them."""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from gateway.registry import ModelEntry


class ModelCapabilities(Struct, kw_only=True):
    """What a model takes beyond plain chat (a request for what it lacks gets a 400 naming it)."""

    tools: bool = False  # tools / tool_choice on chat completions
    structured_outputs: bool = False  # response_format json_object / json_schema, forced tools
    logprobs: bool = False  # logprobs / top_logprobs
    vision: bool = False  # image input

    @classmethod
    def of(cls, entry: ModelEntry) -> ModelCapabilities:
        """From the registry: tools where the model has a tool-call parser; guided decoding and
        logprobs as the entry says, else on every generating contract but the LLM API model's,
        which has no such inputs."""
        generates = entry.kind == "chat"
        by_contract = generates and entry.contract != "llmapi"
        guided = by_contract if entry.structured_outputs is None else generates and entry.structured_outputs
        logprobs = by_contract if entry.logprobs is None else generates and entry.logprobs
        return cls(tools=generates and entry.tool_parser is not None,
                   structured_outputs=guided, logprobs=logprobs, vision=entry.vision)


class Model(Struct, kw_only=True):
    id: str
    object: str = "model"
    created: int
    owned_by: str
    permission: list[dict[str, Any]]
    root: str
    parent: str | None = None
    capabilities: ModelCapabilities | None = None


class ModelList(Struct, kw_only=True):
    object: str = "list"
    data: list[Model]
