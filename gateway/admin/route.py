"""Admin API (admin keys only): keys, model activation, usage."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler

from gateway.admin.protocol import KeyFields as KeyFields  # re-exported for gateway.openapi
from gateway.admin.service import AdminService
from gateway.auth.principal import Principal
from gateway.http.body import decode_body
from gateway.http.responses import json_response

AdminRequest = Request[Any, Any, Any]
AdminKey = NamedDependency[Principal]  # resolved before the body is read; admins only


async def _set_active(admin_service: AdminService, model_id: str, active: bool) -> Response[bytes]:
    await admin_service.set_active(model_id, active)
    return json_response({"id": model_id, "active": active})


def admin_routes(admin_service: AdminService) -> list[HTTPRouteHandler]:
    """The admin API over ``admin_service``; every route needs an admin key (``admin``), checked
    before any body is read."""

    @post("/admin/keys", status_code=201)
    async def create_key(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        fields = decode_body(await request.body() or b"{}", KeyFields).values()
        key, record = await admin_service.create_key(fields)
        return json_response({"key": key, **record.public()}, 201)

    @get("/admin/keys")
    async def list_keys(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        return json_response({"object": "list", "data": [k.public() for k in await admin_service.keystore.list_keys()]})

    @get("/admin/keys/{key_id:str}")
    async def get_key(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        key_id = str(request.path_params["key_id"])
        return json_response((await admin_service.key(key_id)).public())

    @patch("/admin/keys/{key_id:str}")
    async def update_key(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        key_id = str(request.path_params["key_id"])
        await admin_service.key(key_id)
        fields = decode_body(await request.body() or b"{}", KeyFields).values()
        return json_response((await admin_service.update_key(key_id, fields)).public())

    @post("/admin/keys/{key_id:str}/revoke", status_code=200)
    async def revoke_key(request: AdminRequest, admin: AdminKey) -> Response[bytes]:
        key_id = str(request.path_params["key_id"])
        return json_response((await admin_service.update_key(key_id, {"revoked": True})).public())

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
