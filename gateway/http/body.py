"""Request bodies -> wire structs, with msgspec errors turned into OpenAI errors."""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Any, TypeVar

import msgspec
from litestar import Request

from gateway.errors import InvalidRequestError, RequestTimeoutError, UnsupportedMediaTypeError

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


# Bodies larger than this are decoded on a worker thread: the interpreter then switches back to
# the event loop every few milliseconds, so other requests are not held up by a large decode.
OFF_LOOP_BYTES = 256 * 1024


class BodyReader:
    """Reads a request's JSON body after authentication: right media type, bounded in time.

    The size is bounded by the app (``request_max_body_size``); the time here, so a client that
    sends a body slowly (or never finishes a chunked one) holds no connection for long.
    """

    def __init__(self, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s

    async def read(self, request: Request[Any, Any, Any], kind: type[T]) -> T:
        """The body decoded into ``kind``.

        Raises:
            UnsupportedMediaTypeError: a Content-Type that is not JSON.
            RequestTimeoutError: the body did not arrive within ``timeout_s``.
            InvalidRequestError: as ``decode_body``.
        """
        media = request.headers.get("content-type", "application/json").split(";", 1)[0]
        media = media.strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaTypeError(f"Content-Type must be application/json, not "
                                            f"'{media[:100]}'")
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await request.body()
        except TimeoutError as exc:
            raise RequestTimeoutError(
                f"The request body did not arrive within {self.timeout_s:.0f}s") from exc
        if len(body) > OFF_LOOP_BYTES:
            return await asyncio.to_thread(decode_body, body, kind)
        return decode_body(body, kind)
