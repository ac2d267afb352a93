"""OpenAI embeddings wire structs."""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, Struct, UnsetType


class EmbeddingRequest(Struct, kw_only=True):
    model: str
    # A string, a list of strings, or token ids (checked in serving: msgspec unions allow one
    # array type only).
    input: object = UNSET
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None


class Embedding(Struct, kw_only=True):
    object: str = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(Struct):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(Struct, kw_only=True):
    object: str = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


__all__ = ["EmbeddingRequest", "Embedding", "EmbeddingUsage", "EmbeddingList", "UnsetType"]
