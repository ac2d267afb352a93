"""OpenAI Responses API wire structs (names as in OpenAI's spec; requests ignore unknown fields).

Input items, tools and formats stay free-form JSON here: they are unions OpenAI tells apart by
``type`` (or, for an input message, by ``role`` alone), and ``gateway.responses.translate``
checks each one with a 400 that names its place in the request.
"""

from __future__ import annotations

from typing import Any, Literal

from msgspec import UNSET, Struct, UnsetType

ResponseStatus = Literal["completed", "failed", "in_progress", "incomplete"]


class ResponseCreateRequest(Struct, kw_only=True):
    model: str
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: dict[str, Any] | None = None
    stream: bool | None = False
    metadata: dict[str, str] | None = None
    user: str | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    # Accepted and checked; refused unless they ask for what this server does anyway.
    background: bool | None = None
    reasoning: dict[str, Any] | None = None
    include: list[str] | None = None
    truncation: str | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
    service_tier: str | None = None
    prompt: dict[str, Any] | None = None
    conversation: str | dict[str, Any] | None = None
    # Identifiers that change nothing here (OpenAI uses them for caching and abuse detection).
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    stream_options: dict[str, Any] | None = None


# Output -----------------------------------------------------------------------------------------


class OutputText(Struct, tag="output_text", tag_field="type"):
    text: str
    annotations: list[Any]
    logprobs: list[Any]


class OutputMessage(Struct, tag="message", tag_field="type", kw_only=True):
    id: str
    status: str
    role: str = "assistant"
    content: list[OutputText]


class FunctionToolCall(Struct, tag="function_call", tag_field="type", kw_only=True):
    id: str
    call_id: str
    name: str
    arguments: str
    status: str


OutputItem = OutputMessage | FunctionToolCall


class InputTokensDetails(Struct):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(Struct):
    reasoning_tokens: int = 0


class ResponseUsage(Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class ResponseError(Struct):
    code: str
    message: str


class IncompleteDetails(Struct):
    reason: str


class Response(Struct, kw_only=True):
    id: str
    object: str = "response"
    created_at: int
    status: ResponseStatus
    completed_at: int | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None
    max_output_tokens: int | None
    model: str
    output: list[OutputItem]
    parallel_tool_calls: bool
    previous_response_id: str | None
    reasoning: None = None
    store: bool
    temperature: float | None
    text: dict[str, Any]
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    top_p: float | None
    truncation: str = "disabled"
    usage: ResponseUsage | UnsetType = UNSET  # absent until known (the spec has no null here)
    user: str | UnsetType = UNSET  # a string when given (the spec has no null here)
    metadata: dict[str, str]
    background: bool = False


class ResponseDeleted(Struct, kw_only=True):
    id: str
    object: str = "response"
    deleted: bool = True


# Streaming events (each also carries ``sequence_number``, set as it is sent) --------------------


class ResponseLifecycleEvent(Struct, kw_only=True):
    """``response.created``, ``.in_progress``, ``.completed``, ``.incomplete``, ``.failed``."""

    type: str
    sequence_number: int = 0
    response: Response


class ResponseOutputItemEvent(Struct, kw_only=True):
    """``response.output_item.added`` and ``.done``."""

    type: str
    sequence_number: int = 0
    output_index: int
    item: OutputItem


class ResponseContentPartEvent(Struct, kw_only=True):
    """``response.content_part.added`` and ``.done``."""

    type: str
    sequence_number: int = 0
    item_id: str
    output_index: int
    content_index: int
    part: OutputText


class ResponseTextDeltaEvent(Struct, kw_only=True):
    type: str = "response.output_text.delta"
    sequence_number: int = 0
    item_id: str
    output_index: int
    content_index: int
    delta: str
    logprobs: list[Any]


class ResponseTextDoneEvent(Struct, kw_only=True):
    type: str = "response.output_text.done"
    sequence_number: int = 0
    item_id: str
    output_index: int
    content_index: int
    text: str
    logprobs: list[Any]


class ResponseFunctionCallArgumentsDeltaEvent(Struct, kw_only=True):
    type: str = "response.function_call_arguments.delta"
    sequence_number: int = 0
    item_id: str
    output_index: int
    delta: str


class ResponseFunctionCallArgumentsDoneEvent(Struct, kw_only=True):
    type: str = "response.function_call_arguments.done"
    sequence_number: int = 0
    item_id: str
    output_index: int
    name: str
    arguments: str


class ResponseErrorEvent(Struct, kw_only=True):
    type: str = "error"
    sequence_number: int = 0
    code: str | None
    message: str
    param: str | None


StreamEvent = (ResponseLifecycleEvent | ResponseOutputItemEvent | ResponseContentPartEvent
               | ResponseTextDeltaEvent | ResponseTextDoneEvent
               | ResponseFunctionCallArgumentsDeltaEvent | ResponseFunctionCallArgumentsDoneEvent
               | ResponseErrorEvent)
STREAM_EVENTS: tuple[type[Any], ...] = (
    ResponseLifecycleEvent, ResponseOutputItemEvent, ResponseContentPartEvent, ResponseTextDeltaEvent,
    ResponseTextDoneEvent, ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent, ResponseErrorEvent)
