"""POST /v1/chat/completions (and /api/v1/...)."""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.datastructures import State
from litestar.response import Stream

from gateway.routes.paths import both
from gateway.serving.chat import ChatService
from gateway.serving.sse import SSE_HEADERS

JSON = "application/json"


@post(both("/chat/completions"), status_code=200)
async def chat_completions(request: Request, state: State) -> Response[bytes] | Stream:
    service: ChatService = state.chat
    prep = await service.prepare(await request.body(), request.headers.get("authorization"),
                                 request.scope["state"]["request_id"])
    headers = prep.admission.headers
    if prep.request.stream:
        events = await service.stream(prep)
        return Stream(events, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
    completion = await service.complete(prep)
    return Response(state.encoder.encode(completion), media_type=JSON, headers=headers)
