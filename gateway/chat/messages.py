"""OpenAI messages -> the plain ``{"role", "content"}`` list a chat template renders, plus image refs."""

from __future__ import annotations

import json
from typing import Any

from gateway.chat.protocol import ChatMessage, ImagePart, TextPart
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry

_ROLES = {"system", "user", "assistant", "developer", "tool"}


def _invalid(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_messages")


# Characters one token of context may stand for, at most, in any tokenizer we know of (long
# words and whitespace runs included): more text than this cannot fit, whatever it says.
CHARS_PER_TOKEN_MAX = 32


def check_size(messages: list[ChatMessage], entry: ModelEntry) -> int:
    """Refuse, before any expensive work, a conversation that cannot fit the model's context.

    Every message and every content part renders to at least one token, and a token stands for
    at most ``CHARS_PER_TOKEN_MAX`` characters.

    Returns:
        The number of characters of text in the messages (for a cheap token estimate).

    Raises:
        InvalidRequestError: ``context_length_exceeded`` naming the limit that was passed.
    """
    limit = entry.context_length
    if len(messages) > limit:
        raise _too_big(f"{len(messages)} messages cannot fit the context of model '{entry.id}' "
                       f"({limit} tokens)")
    parts = chars = 0
    for msg in messages:
        content = msg.content
        if isinstance(content, str):
            chars += len(content)
        elif content is not None:
            parts += len(content)
            chars += sum(len(p.text) for p in content if isinstance(p, TextPart))
    if parts > limit:
        raise _too_big(f"{parts} content parts cannot fit the context of model '{entry.id}' "
                       f"({limit} tokens)")
    if chars > limit * CHARS_PER_TOKEN_MAX:
        raise _too_big(f"{chars} characters of messages cannot fit the context of model "
                       f"'{entry.id}' ({limit} tokens)")
    return chars


def _too_big(message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param="messages", code="context_length_exceeded")


def neutralize(text: str, specials: tuple[str, ...]) -> str:
    """Break the model's special tokens inside message text, so user text cannot open a new
    role (``<|im_start|>system``) or stand for an image (``<image>``): a zero-width space after
    the first character makes the tokenizer read them as plain text."""
    for special in specials:
        if special in text:
            text = text.replace(special, special[0] + "\u200b" + special[1:])
    return text


def flatten_messages(
    messages: list[ChatMessage], entry: ModelEntry, specials: tuple[str, ...] = ()
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """Validate messages and flatten content parts to text.

    Image parts become the model's image token at their place; their URLs are returned as
    ``(url, param)`` pairs in prompt order.

    Raises:
        InvalidRequestError: ``invalid_messages`` for an empty list, unknown role or bad content;
            ``invalid_model_type`` for images sent to a model without vision.
    """
    if not messages:
        raise _invalid("messages must be a non-empty array", "messages")
    out: list[dict[str, Any]] = []
    refs: list[tuple[str, str]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if msg.role not in _ROLES:
            raise _invalid(f"Unsupported role '{msg.role}' at {where}; expected one of "
                           "system, developer, user, assistant, tool", f"{where}.role")
        role = "system" if msg.role == "developer" else msg.role
        if msg.content is None and not msg.tool_calls:
            raise _invalid(f"{where}.content is required", f"{where}.content")
        text = ("" if msg.content is None else neutralize(msg.content, specials)
                if isinstance(msg.content, str)
                else _flatten_parts(msg.content, entry, where, refs, specials))
        out.append({"role": role, "content": text, **tool_fields(msg, where, out, specials)})
    if len(refs) > entry.max_images:
        raise InvalidRequestError(f"Too many images: {len(refs)}; model '{entry.id}' takes at "
                                  f"most {entry.max_images}", param="messages",
                                  code="too_many_images")
    return out, refs


def _flatten_parts(parts: list[TextPart | ImagePart], entry: ModelEntry, where: str,
                   refs: list[tuple[str, str]], specials: tuple[str, ...]) -> str:
    if not parts:
        raise _invalid(f"{where}.content must not be an empty array", f"{where}.content")
    pieces: list[str] = []
    first_ref = len(refs)  # refs holds earlier messages' images too
    for j, part in enumerate(parts):
        if isinstance(part, TextPart):
            pieces.append(neutralize(part.text, specials))
            continue
        param = f"{where}.content[{j}].image_url.url"
        if not entry.vision:
            raise InvalidRequestError(
                f"Model '{entry.id}' does not accept image input; use a vision model",
                param=param, code="invalid_model_type")
        pieces.append(entry.image_token * entry.image_token_repeat)
        refs.append((part.image_url.url, param))
    if len(refs) > first_ref:
        return "".join(pieces)
    return "\n".join(pieces) if len(pieces) > 1 else pieces[0]


def tool_fields(msg: ChatMessage, where: str, earlier: list[dict[str, Any]],
                specials: tuple[str, ...]) -> dict[str, Any]:
    """An assistant message's ``tool_calls`` (arguments as objects, as chat templates expect)
    and a tool message's ``tool_call_id`` with the ``name`` of the call it answers."""
    if msg.tool_calls:
        if msg.role != "assistant":
            raise _invalid(f"only assistant messages may carry tool_calls ({where})",
                           f"{where}.tool_calls")
        return {"tool_calls": [
            {"id": neutralize(call.id, specials), "type": "function",
             "function": {"name": neutralize(call.function.name, specials),
                          "arguments": _arguments(call.function.arguments, specials)}}
            for call in msg.tool_calls]}
    if msg.role != "tool":
        return {}
    if not msg.tool_call_id:
        raise _invalid(f"{where}.tool_call_id is required for role 'tool'", f"{where}.tool_call_id")
    call_id = neutralize(msg.tool_call_id, specials)
    name = next((c["function"]["name"] for m in reversed(earlier) for c in m.get("tool_calls", ())
                 if c["id"] == call_id), "")
    return {"tool_call_id": call_id, "name": name}


def _arguments(arguments: str, specials: tuple[str, ...]) -> Any:
    try:
        value = json.loads(arguments)
    except ValueError:
        return neutralize(arguments, specials)
    return neutralize_json(value, specials) if isinstance(value, dict) else neutralize(arguments, specials)


def neutralize_json(value: Any, specials: tuple[str, ...]) -> Any:
    """``neutralize`` every string (keys too) in a JSON value: tool definitions and call arguments
    reach the prompt as JSON text."""
    if isinstance(value, str):
        return neutralize(value, specials)
    if isinstance(value, dict):
        return {neutralize(k, specials): neutralize_json(v, specials) for k, v in value.items()}
    if isinstance(value, list):
        return [neutralize_json(v, specials) for v in value]
    return value
