"""A Responses request -> the chat completion request the chat pipeline runs, and chat's refusals
-> the Responses names of the parameters they are about.

Input items become chat messages: ``message`` items (``input_text``, ``input_image``, and
``output_text`` from earlier turns) keep their role, a run of ``function_call`` items becomes one
assistant message with ``tool_calls``, a ``function_call_output`` a ``tool`` message.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from gateway.chat.protocol import ChatCompletionRequest, ChatMessage
from gateway.errors import GatewayError, InvalidRequestError
from gateway.responses.logprobs import INCLUDE, MAX_TOP_LOGPROBS
from gateway.responses.protocol import ResponseCreateRequest

_CHAT_FIELDS = frozenset(f.name for f in msgspec.structs.fields(ChatCompletionRequest))
_MESSAGE_FIELDS = frozenset(f.name for f in msgspec.structs.fields(ChatMessage))
_ROLES = ("user", "assistant", "system", "developer")
_TOOL_CHOICES = ("none", "auto", "required")
METADATA_PAIRS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512


def _bad(message: str, param: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def _unsupported(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="unsupported_parameter")


def check_request(req: ResponseCreateRequest) -> None:
    """Refuse what this server cannot honor, naming the parameter.

    Raises:
        InvalidRequestError: ``unsupported_parameter`` or ``invalid_value``.
    """
    if req.background:
        raise _unsupported("background responses are not supported by this server", "background")
    for value in req.include or ():
        if value != INCLUDE:
            raise _unsupported(f"include value '{value}' is not supported by this server: only "
                               f"'{INCLUDE}' is", "include")
    if req.truncation not in (None, "disabled"):
        raise _unsupported("only truncation 'disabled' is supported: an input that does not fit "
                           "the model's context is refused", "truncation")
    if req.top_logprobs is not None and not 0 <= req.top_logprobs <= MAX_TOP_LOGPROBS:
        raise _bad(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", "top_logprobs")
    if req.reasoning and any(v is not None for v in req.reasoning.values()):
        raise _unsupported(f"model '{req.model}' does not support reasoning", "reasoning")
    if req.prompt is not None:
        raise _unsupported("stored prompts are not supported by this server", "prompt")
    if req.conversation is not None:
        raise _unsupported("conversations are not supported by this server; use "
                           "previous_response_id", "conversation")
    if req.service_tier not in (None, "auto", "default"):
        raise _unsupported(f"service_tier '{req.service_tier}' is not offered by this server",
                           "service_tier")
    if req.max_tool_calls is not None and req.max_tool_calls < 0:
        raise _bad("max_tool_calls must not be negative", "max_tool_calls")
    _check_metadata(req.metadata)


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if not metadata:
        return
    if len(metadata) > METADATA_PAIRS:
        raise _bad(f"metadata may hold at most {METADATA_PAIRS} pairs", "metadata")
    for key, value in metadata.items():
        if len(key) > METADATA_KEY_CHARS:
            raise _bad(f"metadata keys may be at most {METADATA_KEY_CHARS} characters", "metadata")
        if len(value) > METADATA_VALUE_CHARS:
            raise _bad(f"metadata values may be at most {METADATA_VALUE_CHARS} characters",
                       "metadata")


def input_items(req: ResponseCreateRequest) -> list[dict[str, Any]]:
    """The request's input as a list of items (a string is one user message)."""
    if isinstance(req.input, str):
        return [{"type": "message", "role": "user", "content": req.input}]
    return list(req.input or [])


def chat_request(req: ResponseCreateRequest, history: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat completion request (as JSON data) that produces this response.

    Args:
        req: the Responses request.
        history: earlier items (a stored response's input and output) to put before the input.

    Raises:
        InvalidRequestError: naming the Responses parameter at fault.
    """
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages += _history_messages(history)
    items = input_items(req)
    if not items and not history:
        raise _bad("input is required", "input", "missing_required_parameter")
    messages += items_to_messages(items, "input")
    chat: dict[str, Any] = {"model": req.model, "messages": messages, "stream": bool(req.stream),
                            "temperature": req.temperature, "top_p": req.top_p,
                            "max_completion_tokens": req.max_output_tokens, "user": req.user}
    if req.stream:
        chat["stream_options"] = {"include_usage": True}
    if req.tools:
        chat["tools"] = [_tool(t, i) for i, t in enumerate(req.tools)]
    if req.tool_choice is not None:
        chat["tool_choice"] = _tool_choice(req.tool_choice)
    if req.parallel_tool_calls is not None:
        chat["parallel_tool_calls"] = req.parallel_tool_calls
    if wants_logprobs(req):
        chat["logprobs"], chat["top_logprobs"] = True, req.top_logprobs or 0
    fmt = text_format(req)
    if fmt["type"] != "text":
        chat["response_format"] = _response_format(fmt)
    for key, param in (("tool_choice", "tool_choice"), ("parallel_tool_calls", "parallel_tool_calls"),
                       ("response_format", "text.format"), ("top_logprobs", "include")):
        if key in chat and key not in _CHAT_FIELDS:
            raise _unsupported(f"{param} is not supported by this server", param)
    return {k: v for k, v in chat.items() if v is not None}


def wants_logprobs(req: ResponseCreateRequest) -> bool:
    """Token log-probabilities asked for: ``include`` names them, or ``top_logprobs`` is set."""
    return INCLUDE in (req.include or ()) or bool(req.top_logprobs)


def _history_messages(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    try:
        return items_to_messages(history, "previous_response_id")
    except InvalidRequestError as exc:  # a stored item this server can no longer replay
        exc.param = "previous_response_id"
        raise


def text_format(req: ResponseCreateRequest) -> dict[str, Any]:
    """``text.format``, ``{"type": "text"}`` when absent.

    Raises:
        InvalidRequestError: a ``text`` option this server cannot honor.
    """
    text = req.text or {}
    if text.get("verbosity") not in (None, "medium"):
        raise _unsupported("text.verbosity is not supported by this server", "text.verbosity")
    fmt = text.get("format") or {"type": "text"}
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise _bad("text.format.type must be one of text, json_object, json_schema", "text.format")
    return fmt


def _response_format(fmt: dict[str, Any]) -> dict[str, Any]:
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if not isinstance(fmt.get("schema"), dict):
        raise _bad("text.format.schema must be a JSON schema object", "text.format.schema")
    if not isinstance(fmt.get("name"), str):
        raise _bad("text.format.name is required", "text.format.name")
    spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
    return {"type": "json_schema", "json_schema": spec}


def _tool(tool: dict[str, Any], i: int) -> dict[str, Any]:
    kind = tool.get("type")
    if kind != "function":
        raise _unsupported(f"tool type '{kind}' is not supported by this server: only function "
                           "tools are", f"tools[{i}].type")
    if not isinstance(tool.get("name"), str):
        raise _bad("a function tool needs a name", f"tools[{i}].name")
    function = {k: tool[k] for k in ("name", "description", "parameters", "strict")
                if tool.get(k) is not None}
    return {"type": "function", "function": function}


def _tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICES:
            raise _bad(f"tool_choice must be one of {', '.join(_TOOL_CHOICES)} or a function",
                       "tool_choice")
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("type") == "allowed_tools":
        tools = [{"type": "function", "function": {"name": t.get("name")}}
                 for t in choice.get("tools") or [] if isinstance(t, dict)]
        return {"type": "allowed_tools",
                "allowed_tools": {"mode": choice.get("mode", "auto"), "tools": tools}}
    raise _unsupported(f"tool_choice type '{choice.get('type')}' is not supported by this server",
                       "tool_choice")


def items_to_messages(items: list[Any], where: str) -> list[dict[str, Any]]:
    """Input items -> chat messages.

    Raises:
        InvalidRequestError: an item this server cannot take, naming ``where[i]``.
    """
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{at} must be an object", at)
        kind = item.get("type", "message")
        if kind == "message":
            messages.append(_message(item, at))
        elif kind == "function_call":
            _need("tool_calls", at)
            call = {"id": _text(item, "call_id", at), "type": "function",
                    "function": {"name": _text(item, "name", at),
                                 "arguments": _text(item, "arguments", at)}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            _need("tool_call_id", at)
            messages.append({"role": "tool", "tool_call_id": _text(item, "call_id", at),
                             "content": _output_text(item.get("output"), f"{at}.output")})
        else:
            raise _unsupported(f"input item type '{kind}' is not supported by this server",
                               f"{at}.type")
    return messages


def _need(field: str, at: str) -> None:
    if field not in _MESSAGE_FIELDS:
        raise _unsupported("function calls in the input need tool support, which this server "
                           "does not have", at)


def _text(item: dict[str, Any], key: str, at: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise _bad(f"{at}.{key} must be a string", f"{at}.{key}")
    return value


def _output_text(output: Any, at: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list) and all(isinstance(p, dict) and p.get("type") == "input_text"
                                        for p in output):
        return "".join(str(p.get("text", "")) for p in output)
    raise _bad(f"{at} must be a string or a list of input_text parts", at)


def _message(item: dict[str, Any], at: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _ROLES:
        raise _bad(f"{at}.role must be one of {', '.join(_ROLES)}", f"{at}.role")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list) or not content:
        raise _bad(f"{at}.content must be a string or a non-empty list of parts", f"{at}.content")
    parts = [_part(p, f"{at}.content[{j}]") for j, p in enumerate(content)]
    if all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _part(part: Any, at: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text", "refusal"):
        text = part.get("text" if kind != "refusal" else "refusal")
        if not isinstance(text, str):
            raise _bad(f"{at}.text must be a string", f"{at}.text")
        return {"type": "text", "text": text}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise _unsupported("input_image needs an image_url (file_id is not supported by this "
                               "server)", f"{at}.image_url")
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("low", "high", "auto"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    raise _unsupported(f"content part type '{kind}' is not supported by this server", f"{at}.type")


_RENAMES = (("max_completion_tokens", "max_output_tokens"), ("max_tokens", "max_output_tokens"),
            ("response_format.json_schema", "text.format"), ("response_format", "text.format"),
            ("logprobs", "include"))
_MESSAGES = re.compile(r"^messages(\[\d+\])?")


def responses_param(exc: GatewayError) -> GatewayError:
    """Rename chat's parameter names in a refusal to the Responses request's (in place)."""
    param = exc.param
    if param is None:
        return exc
    for old, new in _RENAMES:
        if param.startswith(old):
            exc.param = new + param[len(old):]
            if old != "logprobs":  # "include" does not read as the subject of chat's sentence
                exc.message = exc.message.replace(old, new)
            return exc
    if _MESSAGES.match(param):
        exc.param = "input"
    return exc
