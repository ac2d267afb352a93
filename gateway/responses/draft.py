"""The response object: what the request asked for (echoed as OpenAI echoes it), the output items
and usage, built from a chat completion's wire format."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from msgspec import UNSET

from gateway.responses.logprobs import choice_logprobs, output_logprobs
from gateway.responses.protocol import (
    FunctionToolCall,
    IncompleteDetails,
    InputTokensDetails,
    OutputItem,
    OutputMessage,
    OutputText,
    OutputTokensDetails,
    Response,
    ResponseCreateRequest,
    ResponseError,
    ResponseStatus,
    ResponseUsage,
)


def echo_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A function tool as the response object lists it (every field the spec requires)."""
    return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict")}


@dataclass(slots=True)
class Draft:
    """One response in the making: its id, time, and the request's settings to echo."""

    request: ResponseCreateRequest
    model: str
    text: dict[str, Any]
    store: bool
    id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex}")
    created_at: int = field(default_factory=lambda: int(time.time()))

    def response(self, status: ResponseStatus, output: list[OutputItem],
                 usage: ResponseUsage | None = None, *, error: str | None = None) -> Response:
        """The response object with ``status``; ``incomplete`` means cut by max_output_tokens."""
        req = self.request
        return Response(
            id=self.id, created_at=self.created_at, status=status,
            completed_at=int(time.time()) if status == "completed" else None,
            error=ResponseError("server_error", error) if error is not None else None,
            incomplete_details=IncompleteDetails("max_output_tokens") if status == "incomplete"
            else None,
            instructions=req.instructions, max_output_tokens=req.max_output_tokens,
            model=self.model, output=list(output),
            parallel_tool_calls=req.parallel_tool_calls is not False,
            previous_response_id=req.previous_response_id, store=self.store,
            temperature=req.temperature, text={"format": self.text},
            tool_choice=req.tool_choice if req.tool_choice is not None else "auto",
            tools=[echo_tool(t) for t in req.tools or ()], top_p=req.top_p,
            usage=usage if usage is not None else UNSET,
            user=req.user if req.user is not None else UNSET, metadata=dict(req.metadata or {}))


def usage_from(usage: dict[str, Any]) -> ResponseUsage:
    """Chat's ``usage`` -> the Responses usage object."""
    prompt, completion = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    return ResponseUsage(input_tokens=prompt, input_tokens_details=InputTokensDetails(),
                         output_tokens=completion, output_tokens_details=OutputTokensDetails(),
                         total_tokens=prompt + completion)


def output_items(completion: dict[str, Any]) -> tuple[list[OutputItem], str | None]:
    """A chat completion's first choice -> output items (a message, then function calls).

    Returns:
        The items, and the choice's finish reason.
    """
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = message.get("tool_calls") or []
    finish = choice.get("finish_reason")
    status = "incomplete" if finish == "length" else "completed"
    items: list[OutputItem] = []
    content = message.get("content") or ""
    if content or not calls:
        logprobs = output_logprobs(choice_logprobs(choice))
        items.append(OutputMessage(id=f"msg_{uuid.uuid4().hex}", status=status, content=[
            OutputText(text=content, annotations=[], logprobs=logprobs)]))
    for call in calls:
        function = call.get("function") or {}
        items.append(FunctionToolCall(
            id=f"fc_{uuid.uuid4().hex}", call_id=call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            name=function.get("name", ""), arguments=function.get("arguments", ""), status=status))
    return items, finish
