"""POST /v1/embeddings (and /api/v1/...)."""

from __future__ import annotations

from litestar import Request, Response, post
from litestar.datastructures import State

from gateway.routes.paths import both
from gateway.serving.embeddings import EmbeddingService


@post(both("/embeddings"), status_code=200)
async def embeddings(request: Request, state: State) -> Response[bytes]:
    service: EmbeddingService = state.embeddings
    body, headers = await service.create(await request.body(), request.headers.get("authorization"))
    return Response(state.encoder.encode(body), media_type="application/json", headers=headers)
