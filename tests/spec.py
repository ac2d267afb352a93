"""Validate real responses against OpenAI's published schemas, as a client generated from the spec
would (tests/data/openai_spec.json, cut from openai/openai-openapi by
scripts/openai_spec_subset.py).

    from tests.spec import validate
    validate("CreateChatCompletionResponse", response.json())
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC = Path(__file__).parent / "data" / "openai_spec.json"
BASE = "urn:openai-spec"


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` (a few schemas still carry it) as JSON Schema: null allowed."""
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is not True:
        return out
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [out, {"type": "null"}]}


@cache
def _registry() -> tuple[Registry, dict[str, Any]]:
    spec = _nullable(json.loads(SPEC.read_text(encoding="utf-8")))
    root = Resource.from_contents({"components": spec["components"]}, default_specification=DRAFT202012)
    return Registry().with_resource(BASE, root), spec["components"]["schemas"]


@cache
def _validator(name: str) -> Draft202012Validator:
    registry, schemas = _registry()
    if name not in schemas:
        raise KeyError(f"{name} is not in {SPEC.name}; add it to ROOTS in scripts/openai_spec_subset.py")
    schema = {"$id": f"{BASE}#{name}", "$ref": f"{BASE}#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry)


def errors(name: str, instance: Any) -> list[str]:
    """Every way ``instance`` breaks the schema ``name`` (empty when it conforms)."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in _validator(name).iter_errors(instance)]


def validate(name: str, instance: Any) -> None:
    """Raise AssertionError listing every violation of OpenAI's schema ``name``."""
    found = errors(name, instance)
    assert not found, f"{name} violations:\n" + "\n".join(found[:20])
