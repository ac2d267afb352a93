"""The gateway's OpenAPI 3.1 document, served at ``GET /openapi.json`` (no key, as vLLM serves it).

Handlers read raw bodies (``gateway.http.body``), so Litestar cannot see request bodies and its
own generator is off. This module describes each route from the wire structs the handlers
decode and encode (``msgspec.json.schema_components``), every error status a route can answer
with the one OpenAI error body, and the bearer scheme. Paths and methods come from the route
handlers the app registers, so a route that exists is a route that is documented; an
operation missing from ``OPERATIONS`` still appears, marked undocumented (a test refuses that).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from gateway.admin.route import KeyFields
from gateway.chat.protocol import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gateway.completions.protocol import Completion, CompletionRequest
from gateway.embeddings.protocol import EmbeddingList, EmbeddingRequest
from gateway.http.paths import PREFIXES
from gateway.models.protocol import Model, ModelList
from gateway.responses import protocol as responses

PATH = "/openapi.json"
SECURITY_SCHEME = "bearerAuth"
REF = "#/components/schemas/{name}"


# Bodies that handlers build as dicts: described here so the document (and the fuzzer) can hold
# the responses to them.


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(msgspec.Struct):
    """OpenAI's error body: every 4xx and 5xx of the API."""

    error: ErrorDetail


class HealthStatus(msgspec.Struct):
    status: str


class ModelReadiness(msgspec.Struct):
    status: str
    models: dict[str, bool]


class ApiKey(msgspec.Struct, kw_only=True):
    id: str
    prefix: str
    name: str
    owner: str
    admin: bool
    allowed_models: list[str] | None
    rpm: int | None
    tpm: int | None
    max_concurrent: int | None
    expires_at: float | None
    revoked: bool
    created_at: float
    last_used_at: float | None


class CreatedApiKey(ApiKey, kw_only=True):
    key: str  # shown once, at creation


class ApiKeyList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[ApiKey]


class AdminModel(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    vision: bool
    triton_model: str
    active: bool
    ready: bool


class AdminModelList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[AdminModel]


class ModelActivation(msgspec.Struct):
    id: str
    active: bool


class KeyUsage(msgspec.Struct, kw_only=True):
    key_id: str
    day: str
    requests: int
    prompt_tokens: int
    completion_tokens: int


class KeyUsageList(msgspec.Struct, kw_only=True):
    object: str = "list"
    data: list[KeyUsage]


# Operations ------------------------------------------------------------------------------------

ERRORS = {
    400: "Invalid request: malformed JSON, a wrong type or a value out of range",
    401: "Missing, malformed, unknown, expired or revoked API key",
    403: "The key may not do this (model not allowed, admin key needed)",
    404: "Unknown model, key or resource",
    408: "The request body did not arrive in time",
    413: "Request body too large",
    415: "Content-Type is not application/json",
    429: "Rate limit (requests, tokens, concurrency) or too many failed authentications",
    500: "Internal error (the message never carries details)",
    502: "The model server broke its contract",
    503: "The model server or the key store is unavailable, or the model is not ready",
    504: "The model server stopped answering",
}
AUTH = (401, 429, 503)  # every keyed route: 503 when the key store is down
BODY = (400, 408, 413, 415)  # every route that reads a JSON body
MODEL_CALL = (403, 404, 502, 504)  # routes that run a model


@dataclass(frozen=True, slots=True)
class Operation:
    summary: str
    tag: str
    ok: dict[str, type[Any] | None]  # status -> response struct (None: no JSON schema)
    errors: tuple[int, ...] = ()
    request: type[Any] | None = None
    request_required: bool = True
    keyed: bool = True  # needs a bearer key
    stream: bool = False  # 200 may also be text/event-stream
    chunk: str = "ChatCompletionChunk"  # the schema of each streamed event
    events: tuple[type[Any], ...] = ()  # named events (`event:` + `data:`) instead of data chunks
    query: tuple[str, ...] = ()
    media_type: str = "application/json"  # of the 200 body (the usage export is text/csv)


_ADMIN = (*AUTH, 403, 500)
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", "/chat/completions"): Operation(
        "Create a chat completion (JSON, or server-sent events with stream=true)", "chat",
        {"200": ChatCompletion}, (*BODY, *AUTH, *MODEL_CALL, 500), ChatCompletionRequest,
        stream=True),
    ("POST", "/completions"): Operation(
        "Create a legacy text completion, no chat template (JSON, or server-sent events with "
        "stream=true: each event a Completion)", "completions", {"200": Completion},
        (*BODY, *AUTH, *MODEL_CALL, 500), CompletionRequest, stream=True, chunk="Completion"),
    ("POST", "/embeddings"): Operation(
        "Create embeddings", "embeddings", {"200": EmbeddingList},
        (*BODY, *AUTH, *MODEL_CALL, 500), EmbeddingRequest),
    ("GET", "/models"): Operation(
        "List the models this key may use that are active and ready", "models",
        {"200": ModelList}, (*AUTH, 500)),
    ("GET", "/models/{model_id}"): Operation(
        "Retrieve one model (ids may contain '/')", "models", {"200": Model}, (*AUTH, 404, 500)),
    ("GET", "/health/live"): Operation("The process answers", "health", {"200": HealthStatus},
                                       keyed=False),
    ("GET", "/health/ready"): Operation(
        "This gateway serves (started, not draining)", "health",
        {"200": HealthStatus, "503": HealthStatus}, keyed=False),
    ("GET", "/health/models"): Operation(
        "Readiness of every active model (503 unless all are ready)", "health",
        {"200": ModelReadiness, "503": ModelReadiness}, keyed=False),
    ("GET", PATH): Operation("This document", "meta", {"200": None}, keyed=False),
    ("POST", "/admin/keys"): Operation(
        "Create an API key (the key is shown once)", "admin", {"201": CreatedApiKey},
        (*BODY, *_ADMIN), KeyFields, request_required=False),
    ("GET", "/admin/keys"): Operation("List API keys", "admin", {"200": ApiKeyList}, _ADMIN),
    ("GET", "/admin/keys/{key_id}"): Operation("Retrieve an API key", "admin", {"200": ApiKey},
                                               (*_ADMIN, 404)),
    ("PATCH", "/admin/keys/{key_id}"): Operation(
        "Change an API key's fields", "admin", {"200": ApiKey}, (*BODY, *_ADMIN, 404), KeyFields,
        request_required=False),
    ("POST", "/admin/keys/{key_id}/revoke"): Operation("Revoke an API key", "admin",
                                                       {"200": ApiKey}, (*_ADMIN, 404)),
    ("GET", "/admin/models"): Operation("Every registry model, its activation and readiness",
                                        "admin", {"200": AdminModelList}, _ADMIN),
    ("POST", "/admin/models/{model_id}/activate"): Operation(
        "Activate a model", "admin", {"200": ModelActivation}, (*_ADMIN, 404)),
    ("POST", "/admin/models/{model_id}/deactivate"): Operation(
        "Deactivate a model", "admin", {"200": ModelActivation}, (*_ADMIN, 404)),
    ("GET", "/admin/usage"): Operation("Token usage per key and day", "admin",
                                       {"200": KeyUsageList}, _ADMIN, query=("key_id",)),
    ("GET", "/admin/usage/series"): Operation(
        "Usage over time (requests, tokens, errors, rate-limit refusals) in buckets; every key, "
        "or one key and model", "admin", {"200": None}, (400, *_ADMIN),
        query=("range", "key_id", "model")),
    ("GET", "/admin/usage/export"): Operation(
        "The usage buckets as CSV", "admin", {"200": None}, (400, *_ADMIN),
        query=("range", "key_id", "model"), media_type="text/csv"),
    ("GET", "/me/usage/series"): Operation(
        "This key's own usage over time", "usage", {"200": None}, (400, 403, *AUTH, 500),
        query=("range", "model")),
    ("GET", "/me/usage/export"): Operation(
        "This key's own usage buckets as CSV", "usage", {"200": None}, (400, 403, *AUTH, 500),
        query=("range", "model"), media_type="text/csv"),
    ("POST", "/responses"): Operation(
        "Create a response (JSON, or with stream=true server-sent `event:` + `data:` pairs, the "
        "Responses API's semantic events)", "responses", {"200": responses.Response},
        (*BODY, *AUTH, *MODEL_CALL, 500), responses.ResponseCreateRequest, stream=True,
        events=responses.STREAM_EVENTS),
    ("GET", "/responses/{response_id}"): Operation(
        "Retrieve a stored response made with this key", "responses", {"200": responses.Response},
        (*AUTH, 404, 500)),
    ("DELETE", "/responses/{response_id}"): Operation(
        "Delete a stored response made with this key", "responses", {"200": responses.ResponseDeleted},
        (*AUTH, 404, 500)),
}



def sse_event(chunk: str) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1: the schema of a stream describes each event)."""
    return {
        "type": "object",
        "description": f"`data: <{chunk}>` events, then `data: [DONE]`; an error after the "
                       "first event arrives as `data: <ErrorResponse>` (then `[DONE]`)",
        "required": ["data"],
        "properties": {"data": {"anyOf": [
            {"const": "[DONE]"},
            {"type": "string", "contentMediaType": "application/json", "contentSchema": {"anyOf": [
                {"$ref": REF.format(name=chunk)}, {"$ref": REF.format(name="ErrorResponse")}]}},
        ]}},
    }


SSE_EVENT = sse_event("ChatCompletionChunk")


def named_event(kinds: tuple[type[Any], ...]) -> dict[str, Any]:
    """One server-sent event of the Responses API: its type in ``event:``, the event in ``data:``."""
    return {
        "type": "object",
        "description": "`event: <type>` + `data: <event>` pairs numbered by `sequence_number`, "
                       "ending with response.completed, response.incomplete, or an `error` event "
                       "then response.failed; no `[DONE]`",
        "required": ["event", "data"],
        "properties": {"event": {"type": "string"}, "data": {
            "type": "string", "contentMediaType": "application/json",
            "contentSchema": {"anyOf": [_ref(kind) for kind in kinds]}}},
    }

_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def _template(path: str) -> str:
    """Litestar's ``/models/{model_id:path}`` -> OpenAPI's ``/models/{model_id}``."""
    return _PARAM.sub(r"{\1}", path)


def _unprefixed(path: str) -> tuple[str, str]:
    for prefix in PREFIXES:
        if path.startswith(prefix + "/"):
            return prefix, path[len(prefix):]
    return "", path


def _schema_hook(kind: type[Any]) -> dict[str, Any]:
    if kind is object or kind is msgspec.Raw:  # free-form JSON (msgspec needs a non-empty schema)
        return {"description": "any JSON value"}
    raise NotImplementedError(kind)


def _ref(kind: type[Any]) -> dict[str, str]:
    return {"$ref": REF.format(name=kind.__name__)}


def _json(kind: type[Any] | None) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(kind) if kind else {"type": "object"}}}


def _responses(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, kind in op.ok.items():
        content = (_json(kind) if op.media_type == "application/json"
                   else {op.media_type: {"schema": {"type": "string"}}})
        if op.stream and status == "200":
            content["text/event-stream"] = {
                "schema": named_event(op.events) if op.events else sse_event(op.chunk)}
        out[status] = {"description": "OK" if int(status) < 300 else "Not ready", "content": content}
    for code in sorted(set(op.errors)):
        out[str(code)] = {"description": ERRORS[code], "content": _json(ErrorResponse)}
    return out


def _operation(method: str, prefix: str, path: str, name: str) -> dict[str, Any]:
    op = OPERATIONS.get((method, path))
    suffix = "_api_v1" if prefix == "/api/v1" else ""
    if op is None:
        return {"operationId": name + suffix, "summary": "undocumented", "x-undocumented": True,
                "responses": {"default": {"description": "any", "content": _json(ErrorResponse)}}}
    out: dict[str, Any] = {"operationId": name + suffix, "summary": op.summary, "tags": [op.tag],
                           "responses": _responses(op)}
    params = [{"name": p, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
              for p in _PARAM.findall(path)]
    params += [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
               for q in op.query]
    if params:
        out["parameters"] = params
    if op.request is not None:
        out["requestBody"] = {"required": op.request_required, "content": _json(op.request)}
    out["security"] = [{SECURITY_SCHEME: []}] if op.keyed else []
    return out


CHAT_ROLES = ("system", "user", "assistant", "developer", "tool")  # as gateway.chat.messages accepts them


def _refine(schemas: dict[str, Any]) -> None:
    """Value rules the services check beyond the wire types, so the document promises them too."""
    schemas["ChatMessage"]["properties"]["role"] = {"enum": list(CHAT_ROLES)}
    schemas["ChatCompletionRequest"]["properties"]["messages"]["minItems"] = 1
    embedding = schemas["EmbeddingRequest"]
    embedding["properties"]["input"] = {
        "description": "Text to embed: a string or an array of strings (token ids are refused)",
        "anyOf": [{"type": "string", "minLength": 1},
                  {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]}
    embedding["required"] = sorted({*embedding.get("required", ()), "input"})
    completion = schemas["CompletionRequest"]
    completion["properties"]["prompt"] = {
        "description": "A string, an array of strings, an array of token ids or an array of arrays "
                       "of token ids (ids need the model's tokenizer)",
        "anyOf": [{"type": "string", "minLength": 1},
                  {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                  {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
                  {"type": "array", "minItems": 1, "items": {
                      "type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}}}]}


def _version() -> str:
    try:
        return metadata.version("chungus")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build_document(handlers: Iterable[HTTPRouteHandler]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``handlers`` (the app's routes).

    Args:
        handlers: every HTTP route handler the app registers.

    Returns:
        The document as plain JSON-able data.
    """
    paths: dict[str, dict[str, Any]] = {}
    for handler in handlers:
        for raw in sorted(handler.paths):
            full = _template(raw)
            prefix, path = _unprefixed(full)
            for method in sorted(handler.http_methods):
                entry = _operation(method, prefix, path, handler.handler_name)
                paths.setdefault(full, {})[method.lower()] = entry
    kinds: list[type[Any]] = [ErrorResponse, ChatCompletionChunk]
    kinds += [k for op in OPERATIONS.values() for k in (op.request, *op.ok.values()) if k is not None]
    kinds += [k for op in OPERATIONS.values() for k in op.events]
    _, schemas = msgspec.json.schema_components(list(dict.fromkeys(kinds)), schema_hook=_schema_hook,
                                                ref_template=REF)
    _refine(schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "CHUNGUS", "version": _version(),
                 "description": "OpenAI-compatible API; every route also under /api/v1."},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "http", "scheme": "bearer", "bearerFormat": "sk-chungus-...",
                "description": "Authorization: Bearer sk-chungus-..."}},
        },
        "security": [{SECURITY_SCHEME: []}],
    }


def openapi_route(handlers: Sequence[HTTPRouteHandler]) -> HTTPRouteHandler:
    """``GET /openapi.json`` over ``handlers`` and itself; the document is built on first use.

    Args:
        handlers: the app's other route handlers.

    Returns:
        The route handler to register.
    """
    others = tuple(handlers)  # the caller's list may grow (by this route)
    cached: list[bytes] = []

    def document() -> bytes:
        if not cached:
            cached.append(msgspec.json.encode(build_document([*others, openapi_json])))
        return cached[0]

    @get(PATH, sync_to_thread=False)
    def openapi_json() -> Response[bytes]:
        return Response(document(), media_type="application/json")

    return openapi_json
