"""Refusals of the translated request by chat's wire structs name the Responses parameter."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from gateway.responses.service import _invalid


class Function(msgspec.Struct):
    name: str
    parameters: dict[str, Any] | None = None


class Tool(msgspec.Struct):
    type: str
    function: Function


class Message(msgspec.Struct):
    role: str
    content: str | None = None


class Request(msgspec.Struct):
    model: str
    messages: list[Message]
    tools: list[Tool] | None = None
    temperature: float | None = None


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": 5}]}, "input"),
    ({"messages": [], "tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]},
     "tools[0].parameters"),
    ({"messages": [], "temperature": "hot"}, "temperature"),
])
def test_the_param_is_the_responses_name(body: dict[str, Any], param: str) -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({"model": "m", **body}, Request)
    exc = _invalid(caught.value)
    assert (exc.param, exc.code, exc.status) == (param, "invalid_value", 400)
    assert exc.message.endswith(f" at '{param}'")
    assert "$." not in exc.message
