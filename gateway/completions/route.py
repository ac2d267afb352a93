"""POST /v1/completions (and /api/v1/...): decode, hand to the service, send JSON or SSE."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from gateway.auth.principal import Principal
from gateway.completions.protocol import CompletionRequest
from gateway.completions.service import CompletionService
from gateway.http.body import BodyReader
from gateway.http.disconnect import unless_disconnected
from gateway.http.paths import both
from gateway.http.responses import json_response
from gateway.http.sse import SSE_HEADERS


def completion_routes(completions: CompletionService, reader: BodyReader) -> list[HTTPRouteHandler]:
    """The legacy completion routes over ``completions``; the key is checked before the body."""

    @post(both("/completions"), status_code=200)
    async def create_completion(request: Request[Any, Any, Any],
                                principal: NamedDependency[Principal]) -> Response[bytes] | Stream:
        req = await reader.read(request, CompletionRequest)
        prep = await completions.prepare(principal, req, request.scope["state"]["request_id"])
        headers = prep.admission.headers
        if req.stream:
            events = await completions.stream(prep)
            return Stream(events, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
        completion = await unless_disconnected(request.receive, completions.complete(prep))
        return json_response(completion, headers=headers)

    return [create_completion]
