"""Cut the schemas our routes answer with out of OpenAI's published OpenAPI document.

    python scripts/openai_spec_subset.py path/to/openapi.json <commit> > tests/data/openai_spec.json

The input is ``openapi.json`` of the ``openai/openai-openapi`` repository (MIT licence, (c) OpenAI).
The output keeps the named schemas and every schema they reference, unchanged, so tests can
validate real responses against them offline (tests/spec.py).
"""

from __future__ import annotations

import json
import sys
from typing import Any

ROOTS = (
    "CreateChatCompletionResponse", "CreateChatCompletionStreamResponse",
    "CreateCompletionResponse", "CreateEmbeddingResponse", "ListModelsResponse", "Model",
    "ErrorResponse", "Response", "ResponseStreamEvent",
)
PREFIX = "#/components/schemas/"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"][len(PREFIX):]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def subset(spec: dict[str, Any], roots: tuple[str, ...] = ROOTS) -> dict[str, Any]:
    schemas = spec["components"]["schemas"]
    keep: dict[str, Any] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = schemas[name]
        todo.extend(_refs(schemas[name]) - keep.keys())
    return dict(sorted(keep.items()))


def main() -> None:
    path, commit = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    out = {
        "source": f"openai/openai-openapi@{commit} openapi.json (MIT licence, (c) OpenAI)",
        "openapi": spec.get("openapi"),
        "components": {"schemas": subset(spec)},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
