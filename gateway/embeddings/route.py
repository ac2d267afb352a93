"""POST /v1/embeddings (and /api/v1/...)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from gateway.auth.principal import Principal
from gateway.embeddings.protocol import EmbeddingRequest
from gateway.embeddings.service import EmbeddingService
from gateway.http.body import decode_body
from gateway.http.paths import both
from gateway.http.responses import json_response


@post(both("/embeddings"), status_code=200)
async def embeddings(request: Request[Any, Any, Any], principal: Principal,
                     embedder: EmbeddingService) -> Response[bytes]:
    req = decode_body(await request.body(), EmbeddingRequest)
    body, headers = await embedder.create(principal, req)
    return json_response(body, headers=headers)
