"""``response_format`` -> the backend's constrained decoding (a pure function, shared with the
Responses API)."""

from __future__ import annotations

import json
from typing import Any

from gateway.backends.base import Guide
from gateway.chat.tools.definitions import NAME
from gateway.errors import InvalidRequestError


def _bad(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def response_guide(fmt: dict[str, Any] | None) -> Guide | None:
    """``json_object`` -> any JSON object; ``json_schema`` -> output valid under the schema
    (``strict`` or not: the schema is always enforced); ``text`` -> None.

    Raises:
        InvalidRequestError: an unknown type or a malformed ``json_schema``, naming the field.
    """
    kind = (fmt or {}).get("type", "text")
    if fmt is None or kind == "text":
        return None
    if kind == "json_object":
        return Guide("json", param="response_format")
    if kind != "json_schema":
        raise _bad(f"Invalid response_format type '{str(kind)[:40]}': expected 'text', "
                   "'json_object' or 'json_schema'", "response_format.type")
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict):
        raise _bad("response_format.json_schema is required for type 'json_schema'",
                   "response_format.json_schema")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise _bad("response_format.json_schema.name must be 1 to 64 characters of a-z, A-Z, "
                   "0-9, underscores and dashes", "response_format.json_schema.name")
    schema = spec.get("schema")
    if schema is None:
        return Guide("json", param="response_format")
    if not isinstance(schema, dict):
        raise _bad("response_format.json_schema.schema must be a JSON Schema object",
                   "response_format.json_schema.schema")
    return Guide("json_schema", json.dumps(schema), param="response_format")
