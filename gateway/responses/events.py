"""Chat completion chunks -> the Responses API's semantic stream events, in the spec's order.

    response.created, response.in_progress,
    per message:   output_item.added, content_part.added, output_text.delta ...,
                   output_text.done, content_part.done, output_item.done
    per tool call: output_item.added, function_call_arguments.delta ...,
                   function_call_arguments.done, output_item.done
    response.completed | response.incomplete      (or: error, response.failed)

Each event is framed ``event: <type>`` + ``data: <json>`` and numbered by ``sequence_number``.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from gateway.errors import GatewayError
from gateway.responses.draft import Draft, usage_from
from gateway.responses.logprobs import choice_logprobs, delta_logprobs, output_logprobs
from gateway.responses.protocol import (
    FunctionToolCall,
    OutputItem,
    OutputMessage,
    OutputText,
    ResponseContentPartEvent,
    ResponseErrorEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseLifecycleEvent,
    ResponseOutputItemEvent,
    ResponseStatus,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
    StreamEvent,
)

_encoder = msgspec.json.Encoder()
GENERIC_ERROR = "The server had an error while processing your request."


class EventStream:
    """The events of one streamed response, fed chat chunks as they come."""

    def __init__(self, draft: Draft) -> None:
        self.draft = draft
        self.seq = 0
        self.output: list[OutputItem] = []
        self.text: list[str] | None = None  # the open message's text so far
        self.logprobs: list[dict[str, Any]] = []  # the open message's token logprobs so far
        self.call: FunctionToolCall | None = None  # the open function call
        self.call_index: int | None = None
        self.usage: ResponseUsage | None = None

    def _send(self, event: StreamEvent) -> bytes:
        event.sequence_number = self.seq
        self.seq += 1
        return b"event: " + event.type.encode() + b"\ndata: " + _encoder.encode(event) + b"\n\n"

    def start(self) -> list[bytes]:
        """``response.created`` and ``response.in_progress``."""
        snapshot = self.draft.response("in_progress", [])
        return [self._send(ResponseLifecycleEvent(type=kind, response=snapshot))
                for kind in ("response.created", "response.in_progress")]

    def chunk(self, chunk: dict[str, Any]) -> list[bytes]:
        """The events for one chat completion chunk (OpenAI's wire format, as JSON data)."""
        out: list[bytes] = []
        if chunk.get("usage"):
            self.usage = usage_from(chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            logprobs = choice_logprobs(choice)
            if delta.get("content") or logprobs:
                out += self._text_delta(delta.get("content") or "", logprobs or [])
            for call in delta.get("tool_calls") or ():
                out += self._call_delta(call)
        return out

    def _text_delta(self, text: str, logprobs: list[dict[str, Any]]) -> list[bytes]:
        out = self._close_call()
        message = self._message()
        if self.text is None:
            self.text, self.logprobs = [], []
            out += self._open_message(message)
        self.text.append(text)
        self.logprobs += logprobs
        out.append(self._send(ResponseTextDeltaEvent(
            item_id=message.id, output_index=len(self.output) - 1, content_index=0, delta=text,
            logprobs=delta_logprobs(logprobs))))
        return out

    def _message(self) -> OutputMessage:
        last = self.output[-1] if self.output else None
        if self.text is not None and isinstance(last, OutputMessage):
            return last
        message = OutputMessage(id=f"msg_{uuid.uuid4().hex}", status="in_progress", content=[])
        self.output.append(message)
        return message

    def _open_message(self, message: OutputMessage) -> list[bytes]:
        index = len(self.output) - 1
        return [self._send(ResponseOutputItemEvent(type="response.output_item.added",
                                                   output_index=index, item=message)),
                self._send(ResponseContentPartEvent(
                    type="response.content_part.added", item_id=message.id, output_index=index,
                    content_index=0, part=OutputText(text="", annotations=[], logprobs=[])))]

    def _close_message(self, status: str) -> list[bytes]:
        if self.text is None:
            return []
        message = self.output[-1]
        assert isinstance(message, OutputMessage)
        index, text = len(self.output) - 1, "".join(self.text)
        self.text = None
        part = OutputText(text=text, annotations=[], logprobs=output_logprobs(self.logprobs))
        done = [self._send(ResponseTextDoneEvent(item_id=message.id, output_index=index,
                                                 content_index=0, text=text,
                                                 logprobs=delta_logprobs(self.logprobs))),
                self._send(ResponseContentPartEvent(type="response.content_part.done",
                                                    item_id=message.id, output_index=index,
                                                    content_index=0, part=part))]
        message.content, message.status = [part], status
        done.append(self._send(ResponseOutputItemEvent(type="response.output_item.done",
                                                       output_index=index, item=message)))
        return done

    def _call_delta(self, delta: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = delta.get("index", 0)
        function = delta.get("function") or {}
        if self.call is None or index != self.call_index:
            out += self._close_message("completed") + self._close_call()
            call_id = delta.get("id") or f"call_{uuid.uuid4().hex[:24]}"
            self.call = FunctionToolCall(id=f"fc_{uuid.uuid4().hex}", call_id=call_id,
                                         name=function.get("name") or "", arguments="",
                                         status="in_progress")
            self.call_index = index
            self.output.append(self.call)
            out.append(self._send(ResponseOutputItemEvent(
                type="response.output_item.added", output_index=len(self.output) - 1,
                item=self.call)))
        arguments = function.get("arguments")
        if arguments:
            self.call.arguments += arguments
            out.append(self._send(ResponseFunctionCallArgumentsDeltaEvent(
                item_id=self.call.id, output_index=len(self.output) - 1, delta=arguments)))
        return out

    def _close_call(self) -> list[bytes]:
        call, self.call, self.call_index = self.call, None, None
        if call is None:
            return []
        index = self.output.index(call)
        call.status = "completed"
        return [self._send(ResponseFunctionCallArgumentsDoneEvent(
                    item_id=call.id, output_index=index, name=call.name, arguments=call.arguments)),
                self._send(ResponseOutputItemEvent(type="response.output_item.done",
                                                   output_index=index, item=call))]

    def finish(self, finish_reason: str | None) -> tuple[list[bytes], dict[str, Any]]:
        """Close what is open and end the stream.

        Returns:
            The closing events, and the final response as JSON data (to store).
        """
        incomplete = finish_reason == "length"
        out = self._close_call()
        if not self.output and self.text is None:  # nothing generated: an empty message
            self.text = []
            out += self._open_message(self._message())
        out += self._close_message("incomplete" if incomplete else "completed")
        status: ResponseStatus = "incomplete" if incomplete else "completed"
        final = self.draft.response(status, self.output, self.usage)
        out.append(self._send(ResponseLifecycleEvent(type=f"response.{status}", response=final)))
        return out, msgspec.to_builtins(final)

    def fail(self, exc: GatewayError | None) -> list[bytes]:
        """An error after the first byte: the spec's ``error`` event, then ``response.failed``."""
        message = exc.message if exc is not None else GENERIC_ERROR
        code = exc.code if exc is not None else "internal_error"
        param = exc.param if exc is not None else None
        failed = self.draft.response("failed", self.output, self.usage, error=message)
        return [self._send(ResponseErrorEvent(code=code, message=message, param=param)),
                self._send(ResponseLifecycleEvent(type="response.failed", response=failed))]
