"""An instant OpenAI-compatible chat backend (raw ASGI) for putting a peer gateway such as
LiteLLM's proxy in front of: the same answer as our ``echo`` Triton model gives, 16 one-token
chunks when streaming, then a final chunk with ``finish_reason`` and usage, then ``[DONE]``.

Run: ``.venv/bin/python -m uvicorn bench.echo_openai:app --port 17001 --no-access-log``
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

WORDS = [f"w{i}" for i in range(16)]
USAGE = {"prompt_tokens": 16, "completion_tokens": 16, "total_tokens": 32}
_HEAD = {"id": "chatcmpl-echo", "created": 0, "model": "echo"}
COMPLETION = json.dumps({
    **_HEAD, "object": "chat.completion", "usage": USAGE,
    "choices": [{"index": 0, "finish_reason": "length",
                 "message": {"role": "assistant", "content": " ".join(WORDS)}}]}).encode()


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    body = {**_HEAD, "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


CHUNKS = [_chunk({"role": "assistant", "content": ("" if i == 0 else " ") + w}) for i, w in enumerate(WORDS)]
FINAL = [_chunk({}, "length", USAGE), b"data: [DONE]\n\n"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _body(receive: Receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(parts)


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = await _body(receive)
    if scope["path"].endswith("/models"):
        payload = json.dumps({"object": "list", "data": [{"id": "echo", "object": "model"}]}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})
        return
    stream = b'"stream":true' in body.replace(b" ", b"")
    if not stream:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": COMPLETION})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    for piece in CHUNKS + FINAL:
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
