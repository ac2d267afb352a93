"""OpenAI chat completion wire structs (requests ignore unknown fields; names as in OpenAI's spec)."""

from __future__ import annotations

from typing import Any, Literal

from msgspec import UNSET, Struct, UnsetType


class TextPart(Struct, tag="text", tag_field="type"):
    text: str


class ImageURL(Struct):
    url: str
    detail: Literal["auto", "low", "high"] | UnsetType = UNSET


class ImagePart(Struct, tag="image_url", tag_field="type"):
    image_url: ImageURL


ContentPart = TextPart | ImagePart


class FunctionCall(Struct):
    name: str
    arguments: str  # JSON text, as the model wrote it


class ChatCompletionMessageToolCall(Struct, kw_only=True):
    id: str
    type: str = "function"
    function: FunctionCall


class ChatMessage(Struct):
    role: str
    content: str | list[ContentPart] | None = None
    name: str | UnsetType = UNSET
    tool_calls: list[ChatCompletionMessageToolCall] | None = None  # assistant messages
    tool_call_id: str | None = None  # tool messages


class StreamOptions(Struct):
    include_usage: bool = False


class FunctionDefinition(Struct):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ChatCompletionTool(Struct):
    type: str
    function: FunctionDefinition | None = None


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
    top_logprobs: int | None = None
    tools: list[ChatCompletionTool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    # Extensions beyond OpenAI (vLLM and TensorRT-LLM spell them the same way).
    top_k: int | None = None
    repetition_penalty: float | None = None
    min_tokens: int | None = None


# Responses ------------------------------------------------------------------------------------


class Usage(Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(Struct):
    token: str
    logprob: float
    bytes: list[int] | None


class ChatCompletionTokenLogprob(Struct):
    token: str
    logprob: float
    bytes: list[int] | None
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(Struct):
    content: list[ChatCompletionTokenLogprob] | None
    refusal: list[ChatCompletionTokenLogprob] | None = None


class ChatCompletionMessage(Struct, omit_defaults=True):
    """``content`` and ``refusal`` are always sent (null where they do not apply), as the spec
    requires; ``tool_calls`` only when there are some."""

    role: str
    content: str | None
    refusal: str | None
    tool_calls: list[ChatCompletionMessageToolCall] | UnsetType = UNSET


class Choice(Struct):
    index: int
    message: ChatCompletionMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletion(Struct, kw_only=True):
    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage


class ChoiceDeltaFunctionCall(Struct, omit_defaults=True):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET


class ChoiceDeltaToolCall(Struct, omit_defaults=True):
    index: int
    id: str | UnsetType = UNSET
    type: str | UnsetType = UNSET
    function: ChoiceDeltaFunctionCall | UnsetType = UNSET


class ChoiceDelta(Struct, omit_defaults=True):
    role: str | UnsetType = UNSET
    content: str | UnsetType = UNSET
    tool_calls: list[ChoiceDeltaToolCall] | UnsetType = UNSET


class ChunkChoice(Struct):
    index: int
    delta: ChoiceDelta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(Struct, omit_defaults=True):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | UnsetType = UNSET
