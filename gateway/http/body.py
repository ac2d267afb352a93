"""Request bodies -> wire structs, with msgspec errors turned into OpenAI errors."""

from __future__ import annotations

import functools
import re
from typing import Any, TypeVar

import msgspec

from gateway.errors import InvalidRequestError

T = TypeVar("T")

_PATH = re.compile(r" - at `\$\.?([^`]*)`$")


@functools.lru_cache(maxsize=16)
def _decoder(kind: type[Any]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


def decode_body(body: bytes, kind: type[T]) -> T:
    """Decode a JSON body into ``kind``.

    Raises:
        InvalidRequestError: ``invalid_json`` for malformed JSON; for a value of the wrong shape,
            ``invalid_messages`` under ``messages`` and ``invalid_request_error`` with ``param``
            elsewhere.
    """
    try:
        return _decoder(kind).decode(body)  # type: ignore[no-any-return,arg-type]  # types are hashable; the decoder returns a T
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _PATH.search(text)
        param = match.group(1) if match else None
        message = _PATH.sub("", text)
        if param:
            message = f"{message} at '{param}'"
        if param is None and "Object missing required field" in text:
            param = text.rsplit("`", 2)[-2] if text.count("`") >= 2 else None
        code = "invalid_messages" if param and param.startswith("messages") else None
        raise InvalidRequestError(message, param=param, code=code) from exc
    except msgspec.DecodeError as exc:
        raise InvalidRequestError(f"Request body is not valid JSON: {exc}",
                                  code="invalid_json") from exc
    except RecursionError as exc:  # msgspec's own depth limit on free-form fields
        raise InvalidRequestError("Request body is nested too deeply",
                                  code="invalid_json") from exc
