"""GET /v1/models and /v1/models/{id}: active models that Triton reports ready, that the key may use."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler

from gateway.auth.principal import Principal
from gateway.catalog import ModelCatalog
from gateway.errors import ModelNotFoundError
from gateway.http.paths import both
from gateway.http.responses import json_response
from gateway.models.protocol import Model, ModelCapabilities, ModelList
from gateway.registry import ModelEntry


def _model(entry: ModelEntry) -> Model:
    return Model(id=entry.id, created=entry.created, owned_by=entry.owned_by, permission=[],
                 root=entry.id, parent=None, capabilities=ModelCapabilities.of(entry))


def _allowed(principal: NamedDependency[Principal], entry: ModelEntry) -> bool:
    return principal.allowed_models is None or entry.id in principal.allowed_models


def model_routes(catalog: ModelCatalog) -> list[HTTPRouteHandler]:
    """GET /v1/models and /v1/models/{id} over ``catalog``."""

    @get(both("/models"))
    async def list_models(principal: NamedDependency[Principal]) -> Response[bytes]:
        listed = [_model(m) for m in await catalog.listed() if _allowed(principal, m)]
        return json_response(ModelList(data=listed))

    @get(both("/models/{model_id:path}"))
    async def get_model(request: Request[Any, Any, Any],
                        principal: NamedDependency[Principal]) -> Response[bytes]:
        # Model ids may contain "/" (org/name), hence the path parameter.
        model_id = str(request.path_params["model_id"]).lstrip("/")
        entry = await catalog.resolve_ready(model_id)
        if not _allowed(principal, entry):
            raise ModelNotFoundError(model_id)
        return json_response(_model(entry))

    return [list_models, get_model]
