"""POST /v1/embeddings over HTTP with the fake backend: exact bodies, every refusal, caps,
truncation, and tokens counted against a key's limits and usage (real SQLite)."""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from litestar.testing import TestClient

from build_engines.embedding import default_source
from gateway.app import create_app
from gateway.backends.fake import FakeBackend
from gateway.registry import ModelEntry, Registry
from gateway.settings import Settings

ADMIN = "sk-chungus-admin-key-for-embedding-tests"


@pytest.fixture()
def registry(tmp_path: Path) -> Registry:
    shutil.copy(default_source() / "tokenizer.json", tmp_path / "tokenizer.json")
    common = {"kind": "embedding", "contract": "embedding", "tokenizer": "tokenizer.json",
              "embedding_dim": 4, "max_input_tokens": 6}
    return Registry(models=(
        ModelEntry(id="emb", triton_model="emb", **common),  # type: ignore[arg-type]
        ModelEntry(id="mrl", triton_model="mrl", supports_dimensions=True, **common),  # type: ignore[arg-type]
        ModelEntry(id="chat", triton_model="chat", chat_template="t.jinja"),
    ), base_dir=str(tmp_path))


def _app(registry: Registry, **settings: object) -> TestClient:
    base = {"auth_enabled": False, "access_log": False, **settings}
    return TestClient(create_app(Settings(**base),  # type: ignore[arg-type]
                                 FakeBackend(ready={"emb", "mrl", "chat"}), registry=registry))


@pytest.fixture()
def client(registry: Registry) -> Iterator[TestClient]:
    with _app(registry, embedding_max_inputs=3, embedding_max_total_tokens=12) as c:
        yield c


def test_exact_float_body(client: TestClient) -> None:
    r = client.post("/v1/embeddings", json={"model": "emb", "input": "abc"})
    assert r.status_code == 200
    # The fake backend puts a 1 at len(text) % dim and counts words.
    assert r.content == (b'{"object":"list","data":[{"object":"embedding","index":0,'
                         b'"embedding":[0.0,0.0,0.0,1.0]}],"model":"emb",'
                         b'"usage":{"prompt_tokens":1,"total_tokens":1}}')


def test_base64_is_the_same_vectors_little_endian(client: TestClient) -> None:
    body = {"model": "emb", "input": ["ab", "abc d"]}
    floats = client.post("/api/v1/embeddings", json=body).json()["data"]
    packed = client.post("/v1/embeddings", json={**body, "encoding_format": "base64"}).json()["data"]
    for f, p in zip(floats, packed, strict=True):
        assert np.array_equal(np.frombuffer(base64.b64decode(p["embedding"]), "<f4"), f["embedding"])
    assert [d["index"] for d in packed] == [0, 1]


def test_dimensions_cut_and_renormalise_where_supported(client: TestClient) -> None:
    r = client.post("/v1/embeddings", json={"model": "mrl", "input": "a", "dimensions": 2})
    assert r.json()["data"][0]["embedding"] == [0.0, 1.0]
    r = client.post("/v1/embeddings", json={"model": "emb", "input": "a", "dimensions": 2})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "unsupported_parameter")


@pytest.mark.parametrize(("body", "code", "param"), [
    ({"model": "emb"}, "missing_input", "input"),
    ({"model": "emb", "input": ["a", "b", "c", "d"]}, "too_many_inputs", "input"),
    ({"model": "emb", "input": ["a b c d", "e f g h", "i j k l"]}, "too_many_tokens", "input"),
    ({"model": "emb", "input": ["ok", "a b c d e"]}, "context_length_exceeded", "input[1]"),
    ({"model": "mrl", "input": "a", "dimensions": 5}, "invalid_value", "dimensions"),
    ({"model": "chat", "input": "a"}, "invalid_model_type", "model"),
])
def test_refusals(client: TestClient, body: dict, code: str, param: str) -> None:
    r = client.post("/v1/embeddings", json=body)
    assert r.status_code == 400, r.text
    assert (r.json()["error"]["code"], r.json()["error"]["param"]) == (code, param)
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_chat_refuses_an_embedding_model(client: TestClient) -> None:
    r = client.post("/v1/chat/completions", json={"model": "emb", "messages": [
        {"role": "user", "content": "hi"}]})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_model_type")


def test_truncation_setting_embeds_and_bills_what_the_model_reads(registry: Registry) -> None:
    with _app(registry, embedding_truncate=True) as client:
        r = client.post("/v1/embeddings", json={"model": "emb", "input": "a b c d e f g h"})
    assert r.status_code == 200
    assert r.json()["usage"] == {"prompt_tokens": 6, "total_tokens": 6}  # 8 words, window 6


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_tokens_count_against_the_key_and_its_usage(registry: Registry, tmp_path: Path) -> None:
    settings = {"auth_enabled": True, "admin_key": ADMIN, "key_cache_ttl_s": 30,
                "database_url": f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"}
    with _app(registry, **settings) as client:
        assert client.post("/v1/embeddings", json={"model": "emb", "input": "a"}).status_code == 401
        key = client.post("/admin/keys", json={"name": "e", "tpm": 10}, headers=_auth(ADMIN)).json()
        # "x y" is 4 tokens with [CLS] and [SEP]: reserved 4, billed 2 (the backend's count).
        ok = client.post("/v1/embeddings", json={"model": "emb", "input": "x y"},
                         headers=_auth(key["key"]))
        assert ok.status_code == 200 and ok.headers["x-ratelimit-limit-tokens"] == "10"
        # 5 + 5 tokens reserved, 8 left this minute.
        r = client.post("/v1/embeddings", json={"model": "emb", "input": ["a b c", "d e f"]},
                        headers=_auth(key["key"]))
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
        rows = client.get(f"/admin/usage?key_id={key['id']}", headers=_auth(ADMIN)).json()["data"]
    assert (rows[0]["requests"], rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == (1, 2, 0)
