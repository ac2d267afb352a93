"""Constrained decoding on llama.cpp: NVIDIA's guide types -> a GBNF grammar, compiled and checked.

``json`` is llama.cpp's generic JSON grammar; ``json_schema`` goes through llama-cpp-python's
schema converter; ``regex`` through the same converter's pattern translation (the whole output
must match); ``ebnf_grammar`` is GBNF as given (root rule ``root``). llama-cpp-python does not
check the grammar sampler for NULL (a grammar that fails to parse), so ``compile`` does.
"""

from __future__ import annotations

import json

import llama_cpp as L
from inputs import BadRequest

GUIDE_TYPES = ("json", "json_schema", "regex", "ebnf_grammar")
_ANY_STRING_CHAR = '[^"\\\\]'
_JSON_STRING_CHAR = '[^"\\\\\\x7F\\x00-\\x1F]'


def to_gbnf(kind: str, text: str) -> str:
    """The GBNF grammar for one guide.

    Raises:
        BadRequest: an unknown guide type, or a schema or pattern the converter cannot translate.
    """
    from llama_cpp import llama_grammar as g

    if kind == "json":
        return g.JSON_GBNF
    if kind == "ebnf_grammar":
        if not text.strip():
            raise BadRequest("invalid request: guided_decoding_guide: the grammar is empty")
        return text
    if kind == "json_schema":
        try:
            schema = json.loads(text)
            ignored = unenforced(schema)
            grammar = None if ignored else g.json_schema_to_gbnf(json.dumps(schema))
        except Exception as exc:  # noqa: BLE001 - the converter raises many kinds
            raise BadRequest(f"invalid request: guided_decoding_guide: JSON schema not supported: {exc}") from exc
        if ignored:  # never an unconstrained answer where the client asked for a constraint
            raise BadRequest(f"invalid request: guided_decoding_guide: JSON schema keyword {ignored} "
                             "is not enforced by this model")
        # llama-cpp-python's converter lets a string hold raw control characters, which JSON
        # forbids (json.loads refuses them): exclude them as llama.cpp's own converter does.
        return grammar.replace(_ANY_STRING_CHAR, _JSON_STRING_CHAR)
    if kind == "regex":
        pattern = _escapes_as_classes(text)
        pattern = pattern if pattern.startswith("^") else "^" + pattern
        pattern = pattern if pattern.endswith("$") else pattern + "$"
        try:
            converter = g.SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=True)
            converter.visit({"type": "string", "pattern": pattern}, "")
            return converter.format_grammar()
        except Exception as exc:  # noqa: BLE001
            raise BadRequest(f"invalid request: guided_decoding_guide: regex not supported: {exc}") from exc
    raise BadRequest(f"invalid request: guided_decoding_guide_type {kind!r} is not one of {', '.join(GUIDE_TYPES)}")


# Constraints llama-cpp-python's schema converter drops without a word: a schema using them is
# refused rather than half enforced. (It enforces type, properties, required,
# additionalProperties, items, prefixItems, min/maxItems, min/maxLength, pattern, enum, const,
# anyOf, oneOf, allOf, $ref and the formats below; annotations such as title are ignored.)
_UNENFORCED = frozenset({
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "uniqueItems",
    "not", "if", "then", "else", "contains", "minContains", "maxContains", "minProperties",
    "maxProperties", "patternProperties", "propertyNames", "dependentRequired", "dependentSchemas",
    "dependencies", "unevaluatedProperties", "unevaluatedItems"})
_FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})
_SCHEMA_MAPS = ("properties", "$defs", "definitions")
_SUBSCHEMAS = ("items", "prefixItems", "anyOf", "oneOf", "allOf", "additionalProperties")


def unenforced(schema) -> str | None:
    """The first keyword of ``schema`` (at any depth) the converter would not enforce, quoted."""
    if isinstance(schema, list):
        return next((found for item in schema if (found := unenforced(item))), None)
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        if key in _UNENFORCED:
            return repr(key)
        if key == "format" and value not in _FORMATS:
            return f"'format': {value!r}"
        children = list(value.values()) if key in _SCHEMA_MAPS and isinstance(value, dict) else \
            [value] if key in _SUBSCHEMAS else []
        for child in children:
            found = unenforced(child)
            if found:
                return found
    return None


def _escapes_as_classes(pattern: str) -> str:
    """``\\.`` -> ``[.]`` outside character classes: the converter copies an escaped punctuation
    character into a GBNF string literal as is, where llama.cpp does not accept the escape."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            if not in_class and not nxt.isalnum():
                out.append("[" + ("\\" + nxt if nxt in "]\\^-" else nxt) + "]")
            else:
                out.append(c + nxt)
            i += 2
            continue
        in_class = (in_class and c != "]") or (not in_class and c == "[")
        out.append(c)
        i += 1
    return "".join(out)


def sampler(vocab, grammar: str):
    """A llama.cpp grammar sampler; NULL (a grammar that does not parse) raises BadRequest."""
    smpl = L.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not smpl:
        raise BadRequest("invalid request: guided_decoding_guide: the grammar does not parse")
    return smpl


def check(vocab, grammar: str) -> None:
    """Compile once to refuse a bad grammar before the request is queued."""
    L.llama_sampler_free(sampler(vocab, grammar))
