"""OpenAI model list wire structs, as the API reference shows them."""

from __future__ import annotations

from typing import Any

from msgspec import Struct


class ModelCapabilities(Struct, kw_only=True):
    """What a model takes beyond plain chat (a request for what it lacks gets a 400 naming it)."""

    tools: bool = False  # tools / tool_choice on chat completions
    structured_outputs: bool = False  # response_format json_object / json_schema, forced tools
    logprobs: bool = False  # logprobs / top_logprobs
    vision: bool = False  # image input


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
