"""Tool calls out of model text, per model family, streamed or whole.

One machine serves every family: text is content until the family's marker (``<tool_call>``,
``[TOOL_CALLS]``, ``<|python_tag|>``, or a leading ``{`` for Llama 3 JSON); after it, JSON call
objects are read one character at a time, so a call's name is known as soon as it is written and
its arguments pass on in pieces. Parsing the whole text is feeding it at once, so a streamed
result always equals the non-streamed one.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Literal

from gateway.chat.tools.scanner import CallObject

NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-.")


@dataclass(frozen=True, slots=True)
class Family:
    markers: tuple[str, ...]  # text that opens the calls
    skip: tuple[str, ...] = ()  # tags between calls
    bare_json_start: bool = False  # output that starts with '{' is a call (Llama 3 JSON)
    bare_names: bool = False  # name{arguments} (Mistral tokenizer v11+)
    id_style: Literal["openai", "mistral"] = "openai"


_HERMES = Family(markers=("<tool_call>",), skip=("<tool_call>", "</tool_call>"))
FAMILIES: dict[str, Family] = {
    "hermes": _HERMES,
    # SmolLM2 (Synth-APIGen): <tool_call>[{...}, ...]</tool_call>, the same machine reads arrays.
    "smollm2": _HERMES,
    "llama3_json": Family(markers=("<|python_tag|>",), skip=("<|python_tag|>",),
                          bare_json_start=True),
    "mistral": Family(markers=("[TOOL_CALLS]",), skip=("[TOOL_CALLS]", "[ARGS]"), bare_names=True,
                      id_style="mistral"),
}
_ALNUM = string.ascii_letters + string.digits


def call_id(family: Family) -> str:
    """A fresh tool-call id in the family's style (Mistral's templates take 9 alphanumerics)."""
    if family.id_style == "mistral":
        return "".join(secrets.choice(_ALNUM) for _ in range(9))
    return f"call_{secrets.token_hex(12)}"


@dataclass(frozen=True, slots=True)
class Event:
    """``content`` text, a call's ``name`` (its start), or a piece of a call's ``args``."""

    kind: Literal["content", "name", "args"]
    text: str
    index: int = -1


@dataclass(slots=True)
class ParsedCall:
    name: str
    arguments: str


@dataclass(slots=True)
class Parsed:
    content: str | None
    calls: list[ParsedCall] = field(default_factory=list)


class ToolStream:
    """Feed text as it is generated; get content and tool-call events back.

    Args:
        family: the model family's format.
        in_calls: the text is calls from its first character (a ``required`` tool_choice's
            guided JSON array).
        named: the whole text is this function's arguments (a named tool_choice).
        parallel: False keeps only the first call.
    """

    def __init__(self, family: Family, *, in_calls: bool = False, named: str | None = None,
                 parallel: bool = True) -> None:
        self.family = family
        self.parallel = parallel
        self.calls = 0  # calls announced
        self._named = named
        self._calls_mode = in_calls
        self._pending = ""  # content held back (a marker may be starting), or unread call text
        self._raw = ""  # everything since the calls began, for the fallback to content
        self._obj: CallObject | None = None
        self._bare = ""  # a Mistral bare name being read
        self._started = False  # any content sent

    def feed(self, text: str) -> list[Event]:
        if self._named is not None:
            return self._feed_named(text)
        if not self._calls_mode:
            return self._feed_content(text)
        self._raw += text
        self._pending += text
        return self._scan()

    def finish(self) -> list[Event]:
        """The end of the text: held-back content, or the call text if no call came of it."""
        if self._named is not None:
            return self._feed_named("") if self.calls == 0 else []
        if not self._calls_mode:
            out, self._pending = self._pending, ""
            return [Event("content", out)] if out else []
        if self.calls == 0 and self._raw:
            return [Event("content", self._raw)]
        return []

    def _feed_named(self, text: str) -> list[Event]:
        out = []
        if self.calls == 0:
            self.calls = 1
            out.append(Event("name", self._named or "", 0))
        if text:
            out.append(Event("args", text, 0))
        return out

    def _feed_content(self, text: str) -> list[Event]:
        pending = self._pending + text
        if self.family.bare_json_start and not self._started:
            stripped = pending.lstrip()
            if not stripped:
                self._pending = pending
                return []
            if stripped.startswith("{"):
                return self._enter_calls("", "", pending)
        hit = min(((pending.find(m), m) for m in self.family.markers if m in pending), default=None)
        if hit is not None:
            at, marker = hit
            return self._enter_calls(pending[:at], marker, pending[at + len(marker):])
        keep = _partial_suffix(pending, self.family.markers)
        out, self._pending = pending[:len(pending) - keep], pending[len(pending) - keep:]
        if not out:
            return []
        self._started = True
        return [Event("content", out)]

    def _enter_calls(self, before: str, marker: str, rest: str) -> list[Event]:
        out = [Event("content", before)] if before else []
        self._calls_mode, self._pending, self._raw = True, "", marker
        return out + self.feed(rest)

    def _scan(self) -> list[Event]:
        out: list[Event] = []
        text, i = self._pending, 0
        while i < len(text):
            obj = self._obj
            if obj is not None:
                i = self._feed_object(obj, text, i, out)
                continue
            rest = text[i:]
            tag = next((t for t in self.family.skip if rest.startswith(t)), None)
            if tag is not None:
                i += len(tag)
                continue
            if any(t.startswith(rest) for t in self.family.skip):
                break  # a tag may be starting: wait for more text
            c = text[i]
            if c == "{":  # the object reads its own brace
                self._open_object(out)
                continue
            i += 1
            if self.family.bare_names and c in NAME_CHARS:
                self._bare += c
            else:
                self._bare = ""
        self._pending = text[i:]
        return out

    def _open_object(self, out: list[Event]) -> None:
        if self._bare:
            self._obj = CallObject(self._bare)
            self._bare = ""
            self._announce(self._obj, out)
        else:
            self._obj = CallObject()

    def _feed_object(self, obj: CallObject, text: str, i: int, out: list[Event]) -> int:
        named_before = obj.name is not None
        while i < len(text) and not obj.done:
            obj.feed(text[i])
            i += 1
            if obj.name is not None and not named_before:
                self._announce(obj, out)
                named_before = True
        if obj.name is not None:
            pieces = obj.take()
            if pieces and self._keep(obj):
                out.append(Event("args", "".join(pieces), self._index(obj)))
        if obj.done:
            if obj.name is not None and not obj.arguments and self._keep(obj):
                out.append(Event("args", "{}", self._index(obj)))
            self._obj = None
        return i

    def _announce(self, obj: CallObject, out: list[Event]) -> None:
        obj.index = self.calls
        self.calls += 1
        if self._keep(obj):
            out.append(Event("name", obj.name or "", self._index(obj)))

    def _index(self, obj: CallObject) -> int:
        return obj.index

    def _keep(self, obj: CallObject) -> bool:
        return self.parallel or self._index(obj) == 0


def _partial_suffix(text: str, markers: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that could begin a marker."""
    best = 0
    for marker in markers:
        for n in range(min(len(marker) - 1, len(text)), best, -1):
            if text.endswith(marker[:n]):
                best = n
                break
    return best


def parse(stream: ToolStream, text: str) -> Parsed:
    """The whole text at once: content (None when there are calls and only blank text) and calls."""
    return collect(stream.feed(text) + stream.finish())


def collect(events: list[Event]) -> Parsed:
    """Content and calls assembled from events."""
    content: list[str] = []
    calls: dict[int, ParsedCall] = {}
    for ev in events:
        if ev.kind == "content":
            content.append(ev.text)
        elif ev.kind == "name":
            calls[ev.index] = ParsedCall(ev.text, "")
        else:
            calls[ev.index].arguments += ev.text
    text = "".join(content)
    if calls and not text.strip():
        return Parsed(None, [calls[i] for i in sorted(calls)])
    return Parsed(text, [calls[i] for i in sorted(calls)])
