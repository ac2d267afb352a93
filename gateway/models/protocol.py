"""OpenAI model list wire structs, as the API reference shows them."""

from __future__ import annotations

from typing import Any

from msgspec import Struct


class Model(Struct, kw_only=True):
    id: str
    object: str = "model"
    created: int
    owned_by: str
    permission: list[dict[str, Any]]
    root: str
    parent: str | None = None


class ModelList(Struct, kw_only=True):
    object: str = "list"
    data: list[Model]
