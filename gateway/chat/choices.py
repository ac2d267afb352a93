"""One choice of a chat completion: backend deltas -> message or stream deltas, with tool calls
parsed out of the text and logprobs carried along."""

from __future__ import annotations

from gateway.backends.base import Delta
from gateway.chat.logprobs import token_logprobs
from gateway.chat.protocol import (
    ChatCompletionMessage,
    ChatCompletionMessageToolCall,
    ChatCompletionTokenLogprob,
    Choice,
    ChoiceDelta,
    ChoiceDeltaFunctionCall,
    ChoiceDeltaToolCall,
    ChoiceLogprobs,
    ChunkChoice,
    FunctionCall,
)
from gateway.chat.tools.definitions import ToolPlan
from gateway.chat.tools.parsers import FAMILIES, Event, ToolStream, call_id, collect


class ChoiceRun:
    """The state of choice ``index`` while its generation runs."""

    def __init__(self, index: int, plan: ToolPlan, parser: str | None, top_logprobs: int | None) -> None:
        self.index = index
        self.plan = plan
        self.last = Delta()
        self.family = FAMILIES.get(parser or "hermes", FAMILIES["hermes"])
        self.tools = (ToolStream(self.family, in_calls=plan.mode == "required",
                                 named=plan.named, parallel=plan.parallel)
                      if plan.active else None)
        self.top = top_logprobs  # None: no logprobs asked
        self.events: list[Event] = []
        self.logprobs: list[ChatCompletionTokenLogprob] = []
        self._pending_logprobs: list[ChatCompletionTokenLogprob] = []
        self._ids: dict[int, str] = {}
        self.role_sent = False
        self._flushed = False

    def add(self, delta: Delta) -> list[Event]:
        """Take one backend delta; the events it yields (content and tool-call pieces)."""
        self.last = delta
        if self.top is not None and delta.logprobs:
            got = token_logprobs(delta.logprobs, self.top)
            self.logprobs += got
            self._pending_logprobs += got
        if self.tools is None:
            events = [Event("content", delta.text)] if delta.text else []
        else:
            events = self.tools.feed(delta.text) if delta.text else []
        self.events += events
        if delta.finish_reason is not None:
            events += self.flush()
        return events

    def flush(self) -> list[Event]:
        """Text the tool parser still holds (once, at the end of the generation)."""
        if self.tools is None or self._flushed:
            return []
        self._flushed = True
        events = self.tools.finish()
        self.events += events
        return events

    @property
    def called(self) -> bool:
        return self.tools is not None and self.tools.calls > 0

    def finish_reason(self) -> str:
        engine = self.last.finish_reason or "stop"
        if self.called and engine != "length" and self.plan.mode != "named":
            return "tool_calls"
        return engine

    def _id(self, index: int) -> str:
        if index not in self._ids:
            self._ids[index] = call_id(self.family)
        return self._ids[index]

    def choice(self) -> Choice:
        """The non-streaming choice."""
        self.flush()
        parsed = collect(self.events)
        calls = [ChatCompletionMessageToolCall(id=self._id(i), function=FunctionCall(c.name, c.arguments))
                 for i, c in enumerate(parsed.calls)]
        content = parsed.content if calls or self.tools is None else parsed.content or ""
        if not calls and content is None:
            content = ""
        message = (ChatCompletionMessage("assistant", content, None, calls) if calls
                   else ChatCompletionMessage("assistant", content, None))
        logprobs = ChoiceLogprobs(self.logprobs) if self.top is not None else None
        return Choice(self.index, message, self.finish_reason(), logprobs)

    def chunk(self, events: list[Event], *, final: bool = False) -> ChunkChoice | None:
        """The stream chunk choice for these events (None when there is nothing to send yet)."""
        content = "".join(e.text for e in events if e.kind == "content")
        calls = self._delta_calls(events)
        first = not self.role_sent
        if not content and not calls and not first and not final:
            return None
        delta = ChoiceDelta(role="assistant") if first else ChoiceDelta()
        if content or (first and not calls):
            delta.content = content
        if calls:
            delta.tool_calls = calls
        self.role_sent = True
        logprobs = None
        if self.top is not None and (self._pending_logprobs or final):
            logprobs = ChoiceLogprobs(self._pending_logprobs)
            self._pending_logprobs = []
        return ChunkChoice(self.index, delta, self.finish_reason() if final else None, logprobs)

    def _delta_calls(self, events: list[Event]) -> list[ChoiceDeltaToolCall]:
        out: dict[int, ChoiceDeltaToolCall] = {}
        for ev in events:
            if ev.kind == "name":
                out[ev.index] = ChoiceDeltaToolCall(
                    ev.index, id=self._id(ev.index), type="function",
                    function=ChoiceDeltaFunctionCall(name=ev.text, arguments=""))
            elif ev.kind == "args":
                call = out.setdefault(ev.index, ChoiceDeltaToolCall(
                    ev.index, function=ChoiceDeltaFunctionCall(arguments="")))
                fn = call.function
                assert isinstance(fn, ChoiceDeltaFunctionCall)
                fn.arguments = f"{fn.arguments or ''}{ev.text}"
        return [out[i] for i in sorted(out)]
