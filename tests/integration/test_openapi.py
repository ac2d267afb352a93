"""GET /openapi.json: every route, request and response bodies from the wire structs, the OpenAI
error body on every error status, the bearer scheme; served without a key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from litestar.testing import TestClient

from gateway.chat.messages import _ROLES
from gateway.openapi import OPERATIONS
from gateway.registry import ModelEntry, Registry
from tests.integration.keys_support import ADMIN, auth, security_client

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Any]]:
    work = tmp_path_factory.mktemp("openapi")
    (work / "t.jinja").write_text("{{ messages[0]['content'] }}")
    registry = Registry(models=(ModelEntry(id="chat-a", triton_model="chat_a", chat_template="t.jinja"),),
                        base_dir=str(work))
    with security_client(registry, f"sqlite+aiosqlite:///{work / 'keys.db'}") as c:
        yield c


@pytest.fixture(scope="module")
def doc(client: TestClient[Any]) -> dict[str, Any]:
    r = client.get("/openapi.json")  # no key
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return dict(r.json())


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].rsplit("/", 1)[-1]
    return dict(doc["components"]["schemas"][name])


def _validate(doc: dict[str, Any], ref: dict[str, Any], instance: object) -> None:
    # The components as a registry of definitions: $ref "#/components/schemas/X" resolves in it.
    jsonschema.validate(instance, {**ref, "components": doc["components"]})


def test_every_route_is_documented_under_both_prefixes(doc: dict[str, Any]) -> None:
    assert doc["openapi"] == "3.1.0"
    assert doc["info"]["title"] == "CHUNGUS"
    paths = doc["paths"]
    assert set(paths) == {
        "/v1/chat/completions", "/api/v1/chat/completions", "/v1/embeddings", "/api/v1/embeddings",
        "/v1/models", "/api/v1/models", "/v1/models/{model_id}", "/api/v1/models/{model_id}",
        "/health/live", "/health/ready", "/health/models", "/openapi.json",
        "/admin/keys", "/admin/keys/{key_id}", "/admin/keys/{key_id}/revoke", "/admin/models",
        "/admin/models/{model_id}/activate", "/admin/models/{model_id}/deactivate", "/admin/usage",
        "/admin/usage/series", "/admin/usage/export", "/me/usage/series", "/me/usage/export",
        "/v1/completions", "/api/v1/completions", "/v1/responses", "/api/v1/responses",
        "/v1/responses/{response_id}", "/api/v1/responses/{response_id}",
    }
    assert set(paths["/admin/keys/{key_id}"]) == {"get", "patch"}
    assert set(paths["/v1/chat/completions"]) == {"post"}
    operations = [op for item in paths.values() for op in item.values()]
    assert not [op["operationId"] for op in operations if op.get("x-undocumented")]
    ids = [op["operationId"] for op in operations]
    assert len(ids) == len(set(ids)) == 33
    assert paths["/api/v1/models"]["get"]["operationId"] == "list_models_api_v1"
    assert len(OPERATIONS) == 25  # each documented once, whatever its prefixes
    export = paths["/admin/usage/export"]["get"]["responses"]["200"]["content"]
    assert export == {"text/csv": {"schema": {"type": "string"}}}
    assert [p["name"] for p in paths["/me/usage/series"]["get"]["parameters"]] == ["range", "model"]


def test_chat_request_schema_comes_from_the_wire_struct(doc: dict[str, Any]) -> None:
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    request = _resolve(doc, ref)
    assert sorted(request["required"]) == ["messages", "model"]
    assert request["properties"]["model"] == {"type": "string"}
    assert request["properties"]["messages"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/ChatMessage"}, "minItems": 1}
    assert "additionalProperties" not in request  # OpenAI SDKs send extras; they are ignored
    message = doc["components"]["schemas"]["ChatMessage"]
    assert message["required"] == ["role"]
    assert set(message["properties"]["role"]["enum"]) == _ROLES == {"system", "user", "assistant",
                                                                     "developer", "tool"}
    text = doc["components"]["schemas"]["TextPart"]
    assert text["properties"]["type"] == {"enum": ["text"]}
    _validate(doc, ref, {"model": "m", "messages": [{"role": "user", "content": "hi"}], "top_k": 5})
    for bad in ({"model": "m"}, {"model": "m", "messages": []},
                {"model": "m", "messages": [{"role": "robot", "content": "hi"}]}):
        with pytest.raises(jsonschema.ValidationError):
            _validate(doc, ref, bad)


def test_embedding_input_is_required_and_textual(doc: dict[str, Any]) -> None:
    ref = {"$ref": "#/components/schemas/EmbeddingRequest"}
    request = _resolve(doc, ref)
    assert request["required"] == ["input", "model"]
    _validate(doc, ref, {"model": "e", "input": ["a", "b"]})
    for bad in ({"model": "e"}, {"model": "e", "input": ""}, {"model": "e", "input": [1, 2]},
                {"model": "e", "input": []}):
        with pytest.raises(jsonschema.ValidationError):
            _validate(doc, ref, bad)


def test_responses_and_streams(doc: dict[str, Any]) -> None:
    chat = doc["paths"]["/api/v1/chat/completions"]["post"]["responses"]
    assert chat["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ChatCompletion"}
    event = chat["200"]["content"]["text/event-stream"]["schema"]
    assert event["required"] == ["data"]
    assert event["properties"]["data"]["anyOf"][0] == {"const": "[DONE]"}
    assert "ChatCompletionChunk" in doc["components"]["schemas"]
    created = doc["paths"]["/admin/keys"]["post"]["responses"]["201"]["content"]["application/json"]
    assert "key" in _resolve(doc, created["schema"])["required"]
    key_fields = doc["components"]["schemas"]["KeyFields"]
    assert key_fields["additionalProperties"] is False
    assert key_fields["properties"]["rpm"]["anyOf"][0] == {"type": "integer", "minimum": 1,
                                                           "maximum": 2**31 - 1}


def test_every_error_status_carries_the_openai_error_body(doc: dict[str, Any]) -> None:
    error = doc["components"]["schemas"]["ErrorResponse"]
    assert error["required"] == ["error"]
    detail = doc["components"]["schemas"]["ErrorDetail"]
    assert sorted(detail["required"]) == ["code", "message", "param", "type"]
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert sorted(int(s) for s in chat if int(s) >= 400) == [400, 401, 403, 404, 408, 413, 415, 429,
                                                            500, 502, 503, 504]
    for item in doc["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                if int(status) >= 400 and not op["operationId"].startswith(("ready", "models")):
                    assert response["content"]["application/json"]["schema"] == ERROR_REF, (
                        op["operationId"], status)
    admin = doc["paths"]["/admin/keys"]["get"]["responses"]
    assert {"401", "403", "429"} <= set(admin)


def test_security_scheme_and_which_routes_need_a_key(doc: dict[str, Any]) -> None:
    assert doc["components"]["securitySchemes"] == {"bearerAuth": {
        "type": "http", "scheme": "bearer", "bearerFormat": "sk-chungus-...",
        "description": "Authorization: Bearer sk-chungus-..."}}
    assert doc["paths"]["/v1/models"]["get"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/admin/usage"]["get"]["security"] == [{"bearerAuth": []}]
    assert doc["paths"]["/health/live"]["get"]["security"] == []
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []


def test_documented_shapes_match_real_responses(client: TestClient[Any], doc: dict[str, Any]) -> None:
    def schema_of(path: str, method: str, status: str) -> dict[str, Any]:
        responses = doc["paths"][path][method]["responses"]
        return dict(responses[status]["content"]["application/json"]["schema"])

    created = client.post("/admin/keys", json={"name": "docs", "rpm": 5}, headers=auth(ADMIN))
    assert created.status_code == 201
    _validate(doc, schema_of("/admin/keys", "post", "201"), created.json())
    models = client.get("/v1/models", headers=auth(created.json()["key"]))
    _validate(doc, schema_of("/v1/models", "get", "200"), models.json())
    assert [m["id"] for m in models.json()["data"]] == ["chat-a"]
    chat = client.post("/v1/chat/completions", headers=auth(ADMIN),
                       json={"model": "chat-a", "messages": [{"role": "user", "content": "hi"}]})
    _validate(doc, schema_of("/v1/chat/completions", "post", "200"), chat.json())
    missing = client.get("/v1/models")
    assert missing.status_code == 401
    _validate(doc, schema_of("/v1/models", "get", "401"), missing.json())
    usage = client.get("/admin/usage", headers=auth(ADMIN))
    _validate(doc, schema_of("/admin/usage", "get", "200"), usage.json())
    admin_models = client.get("/admin/models", headers=auth(ADMIN))
    _validate(doc, schema_of("/admin/models", "get", "200"), admin_models.json())
    assert client.get("/v1/openapi.json").status_code == 404  # served once, at the root (as vLLM)


def test_keys_off_means_no_admin_routes(tmp_path: Path) -> None:
    from gateway.app import create_app
    from gateway.backends.fake import FakeBackend
    from gateway.settings import Settings

    (tmp_path / "t.jinja").write_text("x")
    registry = Registry(models=(ModelEntry(id="m", triton_model="m", chat_template="t.jinja"),),
                        base_dir=str(tmp_path))
    app = create_app(Settings(auth_enabled=False, access_log=False), FakeBackend(), registry=registry)
    with TestClient(app) as c:
        paths = c.get("/openapi.json").json()["paths"]
    assert "/admin/keys" not in paths
    assert "/v1/chat/completions" in paths
