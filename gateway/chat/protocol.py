"""OpenAI chat completion wire structs (requests ignore unknown fields; names as in OpenAI's spec)."""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, Struct, UnsetType


class TextPart(Struct, tag="text", tag_field="type"):
    text: str


class ImageURL(Struct):
    url: str
    detail: Literal["auto", "low", "high"] | UnsetType = UNSET


class ImagePart(Struct, tag="image_url", tag_field="type"):
    image_url: ImageURL


ContentPart = TextPart | ImagePart


class ChatMessage(Struct):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | UnsetType = UNSET


class StreamOptions(Struct):
    include_usage: bool = False


class ChatCompletionRequest(Struct, kw_only=True):
    model: str
    messages: list[ChatMessage]
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = None
    user: str | None = None
    logprobs: bool | None = None
    tools: list[msgspec.Raw] | None = None
    response_format: dict[str, object] | None = None
    # Extensions beyond OpenAI (vLLM and TensorRT-LLM spell them the same way).
    top_k: int | None = None
    repetition_penalty: float | None = None
    min_tokens: int | None = None


# Responses ------------------------------------------------------------------------------------


class Usage(Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionMessage(Struct):
    role: str
    content: str


class Choice(Struct):
    index: int
    message: ChatCompletionMessage
    finish_reason: str | None


class ChatCompletion(Struct, kw_only=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ChoiceDelta(Struct, omit_defaults=True):
    role: str | UnsetType = UNSET
    content: str | UnsetType = UNSET


class ChunkChoice(Struct):
    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None


class ChatCompletionChunk(Struct, omit_defaults=True):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | UnsetType = UNSET
