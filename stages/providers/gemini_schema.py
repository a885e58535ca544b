"""JSON Schema (as OpenAI tools and ``json_schema`` response formats carry it) → the OpenAPI subset
Gemini's ``Schema`` object takes (``parameters``, ``responseSchema``).

Kept: the keywords ``Schema`` documents; ``type: [X, "null"]`` becomes ``type: X, nullable: true``;
``const`` becomes a one-value ``enum``; local ``$ref``s (``#/$defs/...``, ``#/definitions/...``) are
inlined up to a fixed depth. Dropped: everything else (``additionalProperties``, ``$schema``, ...)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_KEPT = {
    "type", "format", "title", "description", "nullable", "enum", "minItems", "maxItems",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "minimum", "maximum",
    "propertyOrdering", "default", "example", "required",
}  # fmt: skip
_MAX_REF_DEPTH = 8


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    defs = {**_mapping(schema.get("definitions")), **_mapping(schema.get("$defs"))}
    return _convert(schema, defs, 0)


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _convert(schema: Mapping[str, Any], defs: Mapping[str, Any], depth: int) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and depth < _MAX_REF_DEPTH:
        target = defs.get(ref.rsplit("/", 1)[-1])
        if isinstance(target, Mapping):
            return _convert({**target, **{k: v for k, v in schema.items() if k != "$ref"}}, defs, depth + 1)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) < len(value):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {
                name: _convert(sub, defs, depth) for name, sub in value.items() if isinstance(sub, Mapping)
            }
        elif key == "items" and isinstance(value, Mapping):
            out[key] = _convert(value, defs, depth)
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            variants = [_convert(v, defs, depth) for v in value if isinstance(v, Mapping)]
            non_null = [v for v in variants if v.get("type") != "null"]
            if len(non_null) < len(variants):
                out["nullable"] = True
            if len(non_null) == 1:
                out.update(non_null[0])
            elif non_null:
                out["anyOf"] = non_null
        elif key in _KEPT:
            out[key] = value
    return out
