"""OpenAI messages -> the plain ``{"role", "content"}`` list a chat template renders, plus image refs."""

from __future__ import annotations

from typing import Any

from gateway.chat.protocol import ChatMessage, ImagePart, TextPart
from gateway.errors import InvalidRequestError
from gateway.registry import ModelEntry

_ROLES = {"system", "user", "assistant", "developer"}


def _invalid(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_messages")


def flatten_messages(
    messages: list[ChatMessage], entry: ModelEntry
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
                           "system, user, assistant", f"{where}.role")
        role = "system" if msg.role == "developer" else msg.role
        if msg.content is None:
            raise _invalid(f"{where}.content is required", f"{where}.content")
        text = (msg.content if isinstance(msg.content, str)
                else _flatten_parts(msg.content, entry, where, refs))
        out.append({"role": role, "content": text})
    if len(refs) > entry.max_images:
        raise InvalidRequestError(f"Too many images: {len(refs)}; model '{entry.id}' takes at "
                                  f"most {entry.max_images}", param="messages",
                                  code="too_many_images")
    return out, refs


def _flatten_parts(parts: list[TextPart | ImagePart], entry: ModelEntry, where: str,
                   refs: list[tuple[str, str]]) -> str:
    if not parts:
        raise _invalid(f"{where}.content must not be an empty array", f"{where}.content")
    pieces: list[str] = []
    first_ref = len(refs)  # refs holds earlier messages' images too
    for j, part in enumerate(parts):
        if isinstance(part, TextPart):
            pieces.append(part.text)
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
