"""One tool-call JSON object read a character at a time: its ``name`` as soon as the string
closes, its ``arguments`` (or ``parameters``) passed on raw as they arrive."""

from __future__ import annotations

import json
from typing import Literal

Value = Literal["name", "args", "skip"]
ARGUMENT_KEYS = ("arguments", "parameters")


class CallObject:
    """Reads ``{"name": ..., "arguments": {...}}`` (keys in any order, other keys skipped).

    ``args_only``: the whole object is the arguments (Mistral's ``name{...}`` form, a named
    ``tool_choice``); its name is given.
    """

    def __init__(self, name: str | None = None) -> None:
        self.args_only = name is not None
        self.name = name
        self.index = -1  # the call's index, once its name is known
        self.arguments: list[str] = []  # raw pieces of the arguments JSON, in order
        self.fresh: list[str] = []  # pieces not yet taken by ``take``
        self.done = False
        self._depth = 0
        self._in_str = self._esc = False
        self._expect = "key"  # at depth 1: key | colon | value | comma
        self._key = ""
        self._reading_key = False
        self._value: Value | None = None
        self._value_string = False
        self._tok = ""

    def take(self) -> list[str]:
        """Argument pieces read since the last call."""
        fresh, self.fresh = self.fresh, []
        return fresh

    def feed(self, c: str) -> None:
        if self.args_only:
            self._emit(c)
            self._track(c)
            return
        if self._in_str:
            self._buffer(c)
            if self._esc:
                self._esc = False
            elif c == "\\":
                self._esc = True
            elif c == '"':
                self._in_str = False
                if self._depth == 1:
                    self._end_string()
            return
        self._structural(c)

    def _track(self, c: str) -> None:
        """Depth and string tracking only (``args_only``)."""
        if self._in_str:
            if self._esc:
                self._esc = False
            elif c == "\\":
                self._esc = True
            elif c == '"':
                self._in_str = False
        elif c == '"':
            self._in_str = True
        elif c in "{[":
            self._depth += 1
        elif c in "}]":
            self._depth -= 1
            self.done = self._depth == 0

    def _structural(self, c: str) -> None:
        if c == '"':
            self._in_str = True
            if self._depth == 1:
                if self._expect == "value":
                    self._start_value(string=True)
                else:
                    self._reading_key, self._tok = True, ""
            self._buffer(c)
        elif c in "{[":
            if self._depth == 1 and self._expect == "value":
                self._start_value(string=False)
            self._depth += 1
            self._buffer(c)
        elif c in "}]":
            self._depth -= 1
            if self._depth == 0:
                self._end_value()
                self.done = True
                return
            self._buffer(c)
            if self._depth == 1:
                self._end_value()
        elif self._depth > 1:
            self._buffer(c)
        elif c == ":":
            self._expect = "value"
        elif c == ",":
            self._end_value()
            self._expect = "key"
        elif c.isspace():
            if self._value is not None:  # a number or literal ends
                self._end_value()
        elif self._expect == "value" or self._value is not None:
            if self._value is None:
                self._start_value(string=False)
            self._buffer(c)

    def _start_value(self, *, string: bool) -> None:
        key = self._key
        self._value = "name" if key == "name" else "args" if key in ARGUMENT_KEYS else "skip"
        self._value_string = string
        self._tok = ""
        self._expect = "comma"

    def _buffer(self, c: str) -> None:
        if self._reading_key or self._value == "name" or (self._value == "args" and self._value_string):
            self._tok += c
        elif self._value == "args":
            self._emit(c)

    def _emit(self, piece: str) -> None:
        self.arguments.append(piece)
        self.fresh.append(piece)

    def _end_string(self) -> None:
        if self._reading_key:
            self._reading_key = False
            self._key = _loads_str(self._tok)
            self._expect = "colon"
        elif self._value is not None:
            self._end_value()

    def _end_value(self) -> None:
        value, self._value = self._value, None
        if value == "name" and self.name is None:
            self.name = _loads_str(self._tok) or None
        elif value == "args" and self._value_string:  # arguments sent as a JSON string
            self._emit(_loads_str(self._tok))
        self._tok = ""


def _loads_str(raw: str) -> str:
    try:
        value = json.loads(raw)
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""
