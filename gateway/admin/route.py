"""Admin API (admin keys only): keys, model activation, usage."""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler

from gateway.admin.service import AdminService
from gateway.auth.keys import digest, display_prefix, generate_key
from gateway.auth.principal import Principal
from gateway.auth.store import KeyRecord, new_key_id
from gateway.errors import NotFoundError
from gateway.http.body import decode_body
from gateway.http.responses import json_response

AdminRequest = Request[Any, Any, Any]
AdminKey = NamedDependency[Principal]  # resolved before the body is read; admins only


# Bounds the database columns can hold (32-bit integers), checked when the body is decoded.
Limit = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]
Text = Annotated[str, msgspec.Meta(max_length=200)]
TEN_YEARS_S = 10 * 365 * 86400.0


class KeyFields(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Text | msgspec.UnsetType = msgspec.UNSET
    owner: Text | msgspec.UnsetType = msgspec.UNSET
    admin: bool | msgspec.UnsetType = msgspec.UNSET
    allowed_models: Annotated[list[Text], msgspec.Meta(max_length=1000)] | None | msgspec.UnsetType = msgspec.UNSET
    rpm: Limit | None | msgspec.UnsetType = msgspec.UNSET
    tpm: Limit | None | msgspec.UnsetType = msgspec.UNSET
    max_concurrent: Limit | None | msgspec.UnsetType = msgspec.UNSET
    expires_at: Annotated[float, msgspec.Meta(ge=0, le=1e11)] | None | msgspec.UnsetType = msgspec.UNSET
    expires_in_s: Annotated[float, msgspec.Meta(gt=0, le=TEN_YEARS_S)] | msgspec.UnsetType = msgspec.UNSET

    def values(self) -> dict[str, object]:
        out = {k: v for k, v in msgspec.structs.asdict(self).items() if v is not msgspec.UNSET}
        if "expires_in_s" in out:
            out["expires_at"] = time.time() + float(out.pop("expires_in_s"))
        return out


async def _key_or_404(svc: AdminService, key_id: str) -> KeyRecord:
    record = await svc.keystore.get(key_id)
    if record is None:
        raise NotFoundError(f"No API key with id '{key_id}'", param="key_id", code="key_not_found")
    return record


async def _set_active(admin_service: AdminService, model_id: str, active: bool) -> Response[bytes]:
    if admin_service.catalog.registry.get(model_id) is None:
        raise NotFoundError(f"Model '{model_id}' is not in the registry", param="model",
                            code="model_not_found")
    await admin_service.activation.set_active(model_id, active)
    return json_response({"id": model_id, "active": active})


def admin_routes(admin_service: AdminService) -> list[HTTPRouteHandler]:
    """The admin API over ``admin_service``; every route needs an admin key (``admin``), checked
    before any body is read."""

    @post("/admin/keys", status_code=201)
    async def create_key(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        fields = decode_body(await request.body() or b"{}", KeyFields).values()
        if fields.get("allowed_models") is not None:
            fields["allowed_models"] = tuple(fields["allowed_models"])  # type: ignore[arg-type]  # a list, per KeyFields
        key = generate_key()
        record = KeyRecord(id=new_key_id(), digest=digest(key), prefix=display_prefix(key),
                           **fields)  # type: ignore[arg-type]  # KeyFields' names and types are KeyRecord's
        await admin_service.keystore.create_key(record)
        return json_response({"key": key, **record.public()}, 201)

    @get("/admin/keys")
    async def list_keys(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        return json_response({"object": "list", "data": [k.public() for k in await admin_service.keystore.list_keys()]})

    @get("/admin/keys/{key_id:str}")
    async def get_key(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        key_id = str(request.path_params["key_id"])
        return json_response((await _key_or_404(admin_service, key_id)).public())

    @patch("/admin/keys/{key_id:str}")
    async def update_key(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        key_id = str(request.path_params["key_id"])
        await _key_or_404(admin_service, key_id)
        fields = decode_body(await request.body() or b"{}", KeyFields).values()
        if fields:
            await admin_service.keystore.update_key(key_id, **fields)
            admin_service.guard.forget(key_id)
        return json_response((await _key_or_404(admin_service, key_id)).public())

    @post("/admin/keys/{key_id:str}/revoke", status_code=200)
    async def revoke_key(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        key_id = str(request.path_params["key_id"])
        await _key_or_404(admin_service, key_id)
        await admin_service.keystore.update_key(key_id, revoked=True)
        admin_service.guard.forget(key_id)
        return json_response((await _key_or_404(admin_service, key_id)).public())

    @get("/admin/models")
    async def admin_models(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        overrides = await admin_service.activation.active_overrides()
        ready = await admin_service.catalog.backend.ready_models()
        data = [{"id": m.id, "kind": m.kind, "vision": m.vision, "triton_model": m.triton_model,
                 "active": overrides.get(m.id, m.active), "ready": m.triton_model in ready}
                for m in admin_service.catalog.registry.models]
        return json_response({"object": "list", "data": data})

    @post("/admin/models/{model_id:str}/activate", status_code=200)
    async def activate_model(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        return await _set_active(admin_service, str(request.path_params["model_id"]), True)

    @post("/admin/models/{model_id:str}/deactivate", status_code=200)
    async def deactivate_model(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        return await _set_active(admin_service, str(request.path_params["model_id"]), False)

    @get("/admin/usage")
    async def usage(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        await admin_service.guard.flush()
        rows = await admin_service.keystore.usage(request.query_params.get("key_id"))
        return json_response({"object": "list", "data": rows})

    return [create_key, list_keys, get_key, update_key, revoke_key, admin_models, activate_model,
            deactivate_model, usage]
