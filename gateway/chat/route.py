"""POST /v1/chat/completions (and /api/v1/...): decode, hand to the service, send JSON or SSE."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from gateway.auth.principal import Principal
from gateway.chat.protocol import ChatCompletionRequest
from gateway.chat.service import ChatService
from gateway.http.body import BodyReader
from gateway.http.disconnect import unless_disconnected
from gateway.http.paths import both
from gateway.http.responses import json_response
from gateway.http.sse import SSE_HEADERS


def chat_routes(chat: ChatService, reader: BodyReader) -> list[HTTPRouteHandler]:
    """The chat routes over ``chat``; the key is checked (``principal``) before the body is read."""

    @post(both("/chat/completions"), status_code=200)
    async def chat_completions(request: Request[Any, Any, Any],
                               principal: NamedDependency[Principal]) -> Response[bytes] | Stream:
        req = await reader.read(request, ChatCompletionRequest)
        prep = await chat.prepare(principal, req, request.scope["state"]["request_id"])
        headers = prep.admission.headers
        if req.stream:
            events = await chat.stream(prep)
            return Stream(events, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
        completion = await unless_disconnected(request.receive, chat.complete(prep))
        return json_response(completion, headers=headers)

    return [chat_completions]
