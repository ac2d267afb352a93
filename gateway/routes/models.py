"""GET /v1/models and /v1/models/{id}: active models that Triton reports ready."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.datastructures import State

from gateway.catalog import ModelCatalog
from gateway.protocol.models import Model, ModelList
from gateway.registry import ModelEntry
from gateway.routes.paths import both


def _model(entry: ModelEntry) -> Model:
    return Model(id=entry.id, created=entry.created, owned_by=entry.owned_by, permission=[],
                 root=entry.id, parent=None)


@get(both("/models"))
async def list_models(request: Request, state: State) -> Response[bytes]:
    await state.guard.authenticate(request.headers.get("authorization"))
    catalog: ModelCatalog = state.catalog
    body = ModelList(data=[_model(m) for m in await catalog.listed()])
    return Response(state.encoder.encode(body), media_type="application/json")


@get(both("/models/{model_id:path}"))
async def get_model(request: Request, state: State) -> Response[bytes]:
    await state.guard.authenticate(request.headers.get("authorization"))
    # Model ids may contain "/" (org/name), hence the path parameter.
    entry = await state.catalog.resolve_ready(str(request.path_params["model_id"]).lstrip("/"))
    return Response(state.encoder.encode(_model(entry)), media_type="application/json")
