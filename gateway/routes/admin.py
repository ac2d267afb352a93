"""Admin API (admin keys only): keys, model activation, usage."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.datastructures import State

from gateway.errors import InvalidRequestError, NotFoundError, PermissionDeniedError
from gateway.security.keys import digest, display_prefix, generate_key
from gateway.security.store import KeyRecord, new_key_id
from gateway.serving.decode import decode_body

JSON = "application/json"
AdminRequest = Request[Any, Any, Any]


class KeyFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | msgspec.UnsetType = msgspec.UNSET
    owner: str | msgspec.UnsetType = msgspec.UNSET
    admin: bool | msgspec.UnsetType = msgspec.UNSET
    allowed_models: list[str] | None | msgspec.UnsetType = msgspec.UNSET
    rpm: int | None | msgspec.UnsetType = msgspec.UNSET
    tpm: int | None | msgspec.UnsetType = msgspec.UNSET
    max_concurrent: int | None | msgspec.UnsetType = msgspec.UNSET
    expires_at: float | None | msgspec.UnsetType = msgspec.UNSET
    expires_in_s: float | msgspec.UnsetType = msgspec.UNSET

    def values(self) -> dict[str, object]:
        out = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not msgspec.UNSET}
        if "expires_in_s" in out:
            out["expires_at"] = time.time() + float(out.pop("expires_in_s"))
        for name in ("rpm", "tpm", "max_concurrent"):
            if out.get(name) is not None and int(out[name]) < 1:
                raise InvalidRequestError(f"{name} must be a positive integer or null", param=name)
        return out


async def _admin(request: AdminRequest, state: State) -> None:
    principal = await state.guard.authenticate(request.headers.get("authorization"))
    if not principal.admin:
        raise PermissionDeniedError("This endpoint needs an admin key", code="admin_required")


def _json(state: State, body: object, status: int = 200) -> Response[bytes]:
    return Response(state.encoder.encode(body), media_type=JSON, status_code=status)


async def _key_or_404(state: State, key_id: str) -> KeyRecord:
    record: KeyRecord | None = await state.keystore.get(key_id)
    if record is None:
        raise NotFoundError(f"No API key with id '{key_id}'", param="key_id", code="key_not_found")
    return record


@post("/admin/keys", status_code=201)
async def create_key(request: AdminRequest, state: State) -> Response[bytes]:
    await _admin(request, state)
    fields = decode_body(await request.body() or b"{}", KeyFields).values()
    if fields.get("allowed_models") is not None:
        fields["allowed_models"] = tuple(fields["allowed_models"])  # type: ignore[arg-type]
    key = generate_key()
    record = KeyRecord(id=new_key_id(), digest=digest(key), prefix=display_prefix(key), **fields)  # type: ignore[arg-type]
    await state.keystore.create_key(record)
    return _json(state, {"key": key, **record.public()}, 201)


@get("/admin/keys")
async def list_keys(request: AdminRequest, state: State) -> Response[bytes]:
    await _admin(request, state)
    return _json(state, {"object": "list", "data": [k.public() for k in await state.keystore.list_keys()]})


@get("/admin/keys/{key_id:str}")
async def get_key(request: AdminRequest, state: State) -> Response[bytes]:
    await _admin(request, state)
    key_id = str(request.path_params["key_id"])
    return _json(state, (await _key_or_404(state, key_id)).public())


@patch("/admin/keys/{key_id:str}")
async def update_key(request: AdminRequest, state: State) -> Response[bytes]:
    await _admin(request, state)
    key_id = str(request.path_params["key_id"])
    await _key_or_404(state, key_id)
    fields = decode_body(await request.body() or b"{}", KeyFields).values()
    record = await state.keystore.update_key(key_id, **fields)
    state.guard.forget(key_id)
    return _json(state, record.public())


@post("/admin/keys/{key_id:str}/revoke", status_code=200)
async def revoke_key(request: AdminRequest, state: State) -> Response[bytes]:
    await _admin(request, state)
    key_id = str(request.path_params["key_id"])
    await _key_or_404(state, key_id)
    record = await state.keystore.update_key(key_id, revoked=True)
    state.guard.forget(key_id)
    return _json(state, record.public())


@get("/admin/models")
async def admin_models(request: AdminRequest, state: State) -> Response[bytes]:
    await _admin(request, state)
    overrides = await state.activation.active_overrides()
    ready = await state.backend.ready_models()
    data = [{"id": m.id, "kind": m.kind, "vision": m.vision, "triton_model": m.triton_model,
             "active": overrides.get(m.id, m.active), "ready": m.triton_model in ready}
            for m in state.registry.models]
    return _json(state, {"object": "list", "data": data})


async def _set_active(request: AdminRequest, state: State, model_id: str, active: bool) -> Response[bytes]:
    await _admin(request, state)
    if state.registry.get(model_id) is None:
        raise NotFoundError(f"Model '{model_id}' is not in the registry", param="model",
                            code="model_not_found")
    await state.activation.set_active(model_id, active)
    return _json(state, {"id": model_id, "active": active})


@post("/admin/models/{model_id:str}/activate", status_code=200)
async def activate_model(request: AdminRequest, state: State) -> Response[bytes]:
    return await _set_active(request, state, str(request.path_params["model_id"]), True)


@post("/admin/models/{model_id:str}/deactivate", status_code=200)
async def deactivate_model(request: AdminRequest, state: State) -> Response[bytes]:
    return await _set_active(request, state, str(request.path_params["model_id"]), False)


@get("/admin/usage")
async def usage(request: AdminRequest, state: State) -> Response[bytes]:
    await _admin(request, state)
    await state.guard.flush()
    rows = await state.keystore.usage(request.query_params.get("key_id"))
    return _json(state, {"object": "list", "data": rows})


ADMIN_ROUTES = [create_key, list_keys, get_key, update_key, revoke_key, admin_models,
                activate_model, deactivate_model, usage]
