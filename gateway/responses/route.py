"""POST /v1/responses, GET and DELETE /v1/responses/{id} (and /api/v1/...): thin handlers."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from gateway.auth.principal import Principal
from gateway.http.body import BodyReader
from gateway.http.disconnect import unless_disconnected
from gateway.http.paths import both
from gateway.http.responses import json_response
from gateway.http.sse import SSE_HEADERS
from gateway.responses.protocol import ResponseCreateRequest, ResponseDeleted
from gateway.responses.service import ResponsesService


def responses_routes(service: ResponsesService, reader: BodyReader) -> list[HTTPRouteHandler]:
    """The Responses routes over ``service``; the key is checked before the body is read."""

    @post(both("/responses"), status_code=200)
    async def create_response(request: Request[Any, Any, Any],
                              principal: NamedDependency[Principal]) -> Response[bytes] | Stream:
        req = await reader.read(request, ResponseCreateRequest)
        run = await service.prepare(principal, req, request.scope["state"]["request_id"])
        headers = run.prep.admission.headers
        if req.stream:
            events = await service.stream(run)
            return Stream(events, media_type="text/event-stream", headers={**SSE_HEADERS, **headers})
        response = await unless_disconnected(request.receive, service.complete(run))
        return json_response(response, headers=headers)

    @get(both("/responses/{response_id:str}"))
    async def get_response(request: Request[Any, Any, Any],
                           principal: NamedDependency[Principal]) -> Response[bytes]:
        return json_response(await service.get(principal, request.path_params["response_id"]))

    @delete(both("/responses/{response_id:str}"), status_code=200)
    async def delete_response(request: Request[Any, Any, Any],
                              principal: NamedDependency[Principal]) -> Response[bytes]:
        response_id = request.path_params["response_id"]
        await service.delete(principal, response_id)
        return json_response(ResponseDeleted(id=response_id))

    return [create_response, get_response, delete_response]
