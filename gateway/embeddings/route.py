"""POST /v1/embeddings (and /api/v1/...)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler

from gateway.auth.principal import Principal
from gateway.embeddings.protocol import EmbeddingRequest
from gateway.embeddings.service import EmbeddingService
from gateway.http.body import BodyReader
from gateway.http.paths import both
from gateway.http.responses import json_response


def embedding_routes(embedder: EmbeddingService, reader: BodyReader) -> list[HTTPRouteHandler]:
    """The embeddings route over ``embedder``."""

    @post(both("/embeddings"), status_code=200)
    async def embeddings(request: Request[Any, Any, Any],
                         principal: NamedDependency[Principal]) -> Response[bytes]:
        req = await reader.read(request, EmbeddingRequest)
        body, headers = await embedder.create(principal, req)
        return json_response(body, headers=headers)

    return [embeddings]
