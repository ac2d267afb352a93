"""The console's JSON API under /console/api: the session stands in for the key.

Every route needs a live console session; admin-only routes need an admin key's session;
every state-changing route needs the session's CSRF token. The playground's chat and
embeddings routes are same-origin proxies onto the real chat and embedding services, so the
browser never holds a key. Errors are the API's own OpenAI error bodies.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, patch, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Stream

from gateway.admin.protocol import KeyFields
from gateway.admin.usage import UsageQuery, csv_response
from gateway.chat.protocol import ChatCompletionRequest
from gateway.console.service import ConsoleService
from gateway.console.sessions import ConsoleSession, check_csrf
from gateway.embeddings.protocol import EmbeddingRequest
from gateway.errors import NotFoundError, PermissionDeniedError, ServiceUnavailableError
from gateway.http.body import BodyReader, decode_body
from gateway.http.responses import json_response
from gateway.http.sse import SSE_HEADERS

AnyRequest = Request[Any, Any, Any]


def console_api_routes(console: ConsoleService, reader: BodyReader) -> list[HTTPRouteHandler]:
    """The JSON routes the console's pages call."""
    admin = console.admin

    async def session(request: AnyRequest, *, change: bool = False,
                      admin_only: bool = False) -> ConsoleSession:
        current = await console.sessions.require(request)
        if change:
            check_csrf(request, current)
        if admin_only and not current.principal.admin:
            raise PermissionDeniedError("This needs an admin key", code="admin_required")
        return current

    @get("/console/api/keys")
    async def list_keys(request: AnyRequest) -> Response[bytes]:
        await session(request, admin_only=True)
        return json_response({"object": "list",
                              "data": [k.public() for k in await admin.keystore.list_keys()]})

    @post("/console/api/keys", status_code=201)
    async def create_key(request: AnyRequest) -> Response[bytes]:
        await session(request, change=True, admin_only=True)
        fields = decode_body(await request.body() or b"{}", KeyFields).values()
        key, record = await admin.create_key(fields)
        return json_response({"key": key, **record.public()}, 201)

    @patch("/console/api/keys/{key_id:str}")
    async def update_key(request: AnyRequest) -> Response[bytes]:
        key_id = str(request.path_params["key_id"])
        await session(request, change=True, admin_only=True)
        fields = decode_body(await request.body() or b"{}", KeyFields).values()
        return json_response((await admin.update_key(key_id, fields)).public())

    @post("/console/api/keys/{key_id:str}/revoke", status_code=200)
    async def revoke_key(request: AnyRequest) -> Response[bytes]:
        key_id = str(request.path_params["key_id"])
        await session(request, change=True, admin_only=True)
        return json_response((await admin.update_key(key_id, {"revoked": True})).public())

    @get("/console/api/models")
    async def models(request: AnyRequest) -> Response[bytes]:
        await session(request, admin_only=True)
        return json_response({"object": "list", "data": await console.model_rows()})

    @post("/console/api/models/{model_id:str}/{action:str}", status_code=200)
    async def set_active(request: AnyRequest) -> Response[bytes]:
        model_id, action = str(request.path_params["model_id"]), str(request.path_params["action"])
        await session(request, change=True, admin_only=True)
        if action not in ("activate", "deactivate"):
            raise NotFoundError(f"Unknown model action '{action[:20]}'", param="action")
        await admin.set_active(model_id, action == "activate")
        return json_response({"id": model_id, "active": action == "activate"})

    @get("/console/api/usage/series")
    async def usage_series(request: AnyRequest) -> Response[bytes]:
        current = await session(request)
        query = UsageQuery.parse(request.query_params, current.principal)
        return json_response(await console.usage.series(query))

    @get("/console/api/usage/export")
    async def usage_export(request: AnyRequest) -> Response[bytes]:
        current = await session(request)
        query = UsageQuery.parse(request.query_params, current.principal)
        return csv_response(await console.usage.csv(query), query)

    @get("/console/api/live")
    async def live(request: AnyRequest) -> Response[bytes]:
        await session(request, admin_only=True)
        if console.live is None:
            raise ServiceUnavailableError("Live metrics are not available in this build",
                                          code="live_metrics_unavailable")
        return json_response(console.live())

    @post("/console/api/chat/completions", status_code=200)
    async def chat(request: AnyRequest) -> Response[bytes] | Stream:
        current = await session(request, change=True)
        req = await reader.read(request, ChatCompletionRequest)
        prep = await console.chat.prepare(current.principal, req,
                                          request.scope["state"]["request_id"])
        if req.stream:
            events = await console.chat.stream(prep)
            return Stream(events, media_type="text/event-stream",
                          headers={**SSE_HEADERS, **prep.admission.headers})
        return json_response(await console.chat.complete(prep), headers=prep.admission.headers)

    @post("/console/api/embeddings", status_code=200)
    async def embeddings(request: AnyRequest) -> Response[bytes]:
        current = await session(request, change=True)
        req = await reader.read(request, EmbeddingRequest)
        body, headers = await console.embeddings.create(current.principal, req)
        return json_response(body, headers=headers)

    return [list_keys, create_key, update_key, revoke_key, models, set_active, usage_series,
            usage_export, live, chat, embeddings]
