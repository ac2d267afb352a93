"""``tools`` / ``tool_choice`` / ``parallel_tool_calls``: checked, and turned into what the chat
template and the backend take (pure functions, shared with the Responses API)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from gateway.backends.base import Guide
from gateway.chat.protocol import ChatCompletionTool, FunctionDefinition
from gateway.errors import InvalidRequestError

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 128
Mode = Literal["none", "auto", "required", "named"]


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What the request asks of tools: which functions, how the model must use them."""

    functions: tuple[FunctionDefinition, ...] = ()
    mode: Mode = "none"
    named: str | None = None  # the function a named tool_choice forces
    parallel: bool = True

    @property
    def active(self) -> bool:
        """True when tools go into the prompt and the output is parsed for calls."""
        return self.mode != "none" and bool(self.functions)


def _bad(message: str, param: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def check_tools(tools: list[ChatCompletionTool] | None, tool_choice: str | dict[str, Any] | None,
                parallel: bool | None) -> ToolPlan:
    """Validate the tool parameters of a chat request.

    Raises:
        InvalidRequestError: naming ``tools[i]...``, ``tool_choice`` or ``parallel_tool_calls``.
    """
    functions = tuple(_function(t, i) for i, t in enumerate(tools or ()))
    if len(functions) > MAX_TOOLS:
        raise _bad(f"at most {MAX_TOOLS} tools are allowed", "tools")
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise _bad("tool function names must be unique", "tools")
    mode, named = _choice(tool_choice, names)
    return ToolPlan(functions, mode, named, parallel is not False)


def _function(tool: ChatCompletionTool, i: int) -> FunctionDefinition:
    where = f"tools[{i}]"
    if tool.type != "function" or tool.function is None:
        raise InvalidRequestError(f"tool type '{tool.type}' is not supported by this server; "
                                  "only 'function' tools are", param=f"{where}.type",
                                  code="unsupported_parameter")
    fn = tool.function
    if not NAME.match(fn.name):
        raise _bad(f"Invalid '{where}.function.name': '{fn.name[:80]}'. It must be 1 to 64 "
                   "characters of a-z, A-Z, 0-9, underscores and dashes", f"{where}.function.name")
    params = fn.parameters
    if params is not None and params.get("type", "object") != "object":
        raise _bad(f"Invalid '{where}.function.parameters': it must be a JSON Schema of type "
                   "'object'", f"{where}.function.parameters")
    return fn


def _choice(choice: str | dict[str, Any] | None, names: list[str]) -> tuple[Mode, str | None]:
    if choice is None:
        return ("auto" if names else "none"), None
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise _bad(f"Invalid tool_choice '{choice[:40]}': expected 'none', 'auto', "
                       "'required' or a named function", "tool_choice")
        if choice != "none" and not names:
            raise _bad(f"tool_choice '{choice}' needs tools", "tool_choice")
        return choice, None  # type: ignore[return-value]  # one of the three checked above
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if choice.get("type") != "function" or not isinstance(name, str):
        raise _bad("tool_choice must be 'none', 'auto', 'required' or "
                   '{"type": "function", "function": {"name": ...}}', "tool_choice")
    if name not in names:
        raise _bad(f"tool_choice names function '{name[:64]}', which is not in tools",
                   "tool_choice")
    return "named", name


def _parameters(fn: FunctionDefinition) -> dict[str, Any]:
    return fn.parameters if fn.parameters is not None else {"type": "object", "properties": {}}


def tool_guide(plan: ToolPlan) -> Guide | None:
    """Constrained decoding for ``required`` and named ``tool_choice``, so the output parses.

    Named: the output is the function's arguments (its ``parameters`` schema). Required: a JSON
    array of ``{"name", "arguments"}`` calls (one call at most without parallel calls).
    """
    if plan.mode == "named":
        fn = next(f for f in plan.functions if f.name == plan.named)
        return Guide("json_schema", json.dumps(_parameters(fn)), param="tool_choice")
    if plan.mode != "required":
        return None
    calls = [{"type": "object", "properties": {"name": {"const": f.name}, "arguments": _parameters(f)},
              "required": ["name", "arguments"], "additionalProperties": False}
             for f in plan.functions]
    array: dict[str, Any] = {"type": "array", "items": calls[0] if len(calls) == 1 else {"anyOf": calls},
                             "minItems": 1}
    if not plan.parallel:
        array["maxItems"] = 1
    return Guide("json_schema", json.dumps(array), param="tool_choice")


def template_tools(plan: ToolPlan) -> list[dict[str, Any]] | None:
    """The ``tools`` a chat template takes (OpenAI's shape, as Hugging Face templates expect)."""
    if not plan.active:
        return None
    out = []
    for fn in plan.functions:
        body: dict[str, Any] = {"name": fn.name}
        if fn.description is not None:
            body["description"] = fn.description
        body["parameters"] = _parameters(fn)
        out.append({"type": "function", "function": body})
    return out
