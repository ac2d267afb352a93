"""Structured outputs through the whole stack: ``response_format`` json_object / json_schema and
``client.chat.completions.parse()`` with a Pydantic model, enforced by the CPU engine's
constrained decoding (every answer parses and validates, even from a 135M model)."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field

from tests.e2e.conftest import CHAT_MODEL

pytestmark = pytest.mark.e2e

CITIES = ["Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Quito", "Rome", "Seoul", "Accra", "Perth"]


class City(BaseModel):
    name: str = Field(max_length=40)
    country: str = Field(max_length=40)
    population_millions: float


def _parse_many(client: openai.OpenAI, count: int) -> None:
    for i in range(count):
        city = CITIES[i % len(CITIES)]
        out = client.chat.completions.parse(
            # Room for the longest answer the grammar allows (two 40-character strings, a number
            # of bounded digits, bounded whitespace), so "length" cannot cut a valid answer short.
            model=CHAT_MODEL, response_format=City, temperature=0.7, seed=i, max_tokens=256,
            messages=[{"role": "user", "content": f"Describe the city of {city} as JSON."}])
        choice = out.choices[0]
        assert choice.finish_reason == "stop", choice
        assert isinstance(choice.message.parsed, City), choice.message.content
        City.model_validate_json(choice.message.content or "")


def test_parse_with_a_pydantic_model(client: openai.OpenAI) -> None:
    _parse_many(client, 10)


@pytest.mark.slow
def test_parse_with_a_pydantic_model_100_times(client: openai.OpenAI) -> None:
    _parse_many(client, 100)


def _streamed(client: openai.OpenAI, **args: Any) -> tuple[str, str | None]:
    """Text and finish reason, streamed (a busy machine's slow constrained decoding cannot trip
    the gateway's idle timeout)."""
    text, finish = "", None
    for chunk in client.chat.completions.create(model=CHAT_MODEL, stream=True, **args):
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish


def test_json_object_outputs_all_parse(client: openai.OpenAI) -> None:
    for i, city in enumerate(CITIES[:5]):
        text, finish = _streamed(
            client, response_format={"type": "json_object"}, temperature=0.7, seed=i, max_tokens=60,
            messages=[{"role": "user", "content": f"Give facts about {city} in JSON."}])
        if finish == "stop":
            assert isinstance(json.loads(text), dict), text


VERDICT = {"type": "object", "properties": {
    "answer": {"type": "string", "enum": ["yes", "no"]},
    "sure": {"type": "boolean"}},
    "required": ["answer", "sure"], "additionalProperties": False}


def test_json_schema_output_validates(client: openai.OpenAI) -> None:
    for seed in range(3):
        text, finish = _streamed(
            client, seed=seed, temperature=1.0, max_tokens=40,
            messages=[{"role": "user", "content": "Is Paris the capital of France?"}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "Verdict", "schema": VERDICT, "strict": True}})
        assert finish == "stop", text
        jsonschema.validate(json.loads(text), VERDICT)


def test_a_schema_the_engine_cannot_enforce_is_refused(client: openai.OpenAI) -> None:
    """Integer bounds: the CPU engine's grammar cannot hold them (it once wrote 15 under maximum
    10), so the request is refused with a 400 before any text, never answered unconstrained."""
    bounded = {**VERDICT, "properties": {**VERDICT["properties"],
                                         "confidence": {"type": "integer", "minimum": 0, "maximum": 10}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=CHAT_MODEL, max_tokens=40, messages=[{"role": "user", "content": "Sure?"}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "Verdict", "schema": bounded}})
    assert "minimum" in info.value.message


def test_streamed_json_equals_non_streamed(client: openai.OpenAI) -> None:
    args = {"model": CHAT_MODEL, "response_format": {"type": "json_object"}, "temperature": 0,
            "max_tokens": 60, "messages": [{"role": "user", "content": "Describe Oslo as JSON."}]}
    whole = client.chat.completions.create(**args).choices[0].message.content  # type: ignore[call-overload]
    streamed = "".join(c.choices[0].delta.content or "" for c in
                       client.chat.completions.create(**args, stream=True) if c.choices)  # type: ignore[call-overload]
    assert streamed == whole
