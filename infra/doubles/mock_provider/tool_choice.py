"""Forced tool choice: the call the mock answers with when a request makes the model call a tool
(OpenAI `tool_choice: "required"` or a named function, Anthropic `any`/`tool`, Gemini mode `ANY`,
Cohere `REQUIRED`, Bedrock `any`/`tool`), with deterministic arguments built from the function's
JSON schema. Each wire reads its own request shape and calls `forced_call`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from infra.doubles.mock_provider.directives import ToolCall

_MAX_DEPTH = 16  # schema nesting (and local `$ref` hops) followed before giving up with null
_BY_TYPE: dict[str, Any] = {"string": "example", "integer": 1, "number": 1.0, "boolean": True, "null": None}


@dataclass(frozen=True, slots=True)
class Function:
    """A declared function: its name and the JSON schema of its arguments (None when it has none)."""

    name: str
    schema: Any = None


class UnknownFunction(LookupError):
    """A forced function name that is not one of the declared functions."""


def function_tools(tools: Any) -> list[Function]:
    """The functions of an OpenAI (or Cohere v2) `tools` list: `{"type": "function", "function":
    {"name", "parameters"}}` entries, in order."""
    if not isinstance(tools, list):
        return []
    return [
        Function(t["function"]["name"], t["function"].get("parameters"))
        for t in tools
        if isinstance(t, dict)
        and t.get("type", "function") == "function"
        and isinstance(t.get("function"), dict)
        and isinstance(t["function"].get("name"), str)
    ]


def forced_call(functions: Sequence[Function], name: str | None = None) -> ToolCall:
    """The call of `name` (or of the first declared function), its arguments from the schema.

    Raises `UnknownFunction` when `name` is not declared (or nothing is)."""
    if name is None:
        if not functions:
            raise UnknownFunction("no function is declared")
        function = functions[0]
    else:
        found = [f for f in functions if f.name == name]
        if not found:
            raise UnknownFunction(name)
        function = found[0]
    arguments = example_arguments(function.schema)
    return ToolCall(function.name, orjson.dumps(arguments).decode())


def example_arguments(schema: Any) -> dict[str, Any]:
    """An object with every required property of `schema`, each with a plausible value by type;
    `{}` when the schema is missing or does not describe an object."""
    if not isinstance(schema, Mapping):
        return {}
    value = example_value(schema, schema, 0)
    return value if isinstance(value, dict) else {}


def example_value(schema: Any, root: Mapping[str, Any], depth: int) -> Any:
    """A deterministic value that `schema` accepts in the common cases: `const`, the first `enum`
    value, the first non-null `anyOf`/`oneOf` branch, merged `allOf`; else by type: string
    `"example"`, integer 1, number 1.0, boolean true, array of `minItems` examples (`[]` by default),
    object of its required properties (recursively). Type names are case-insensitive (Gemini writes
    `STRING`); a schema without a type reads as an object if it has properties, an array if it has
    items, else a string."""
    if depth > _MAX_DEPTH:
        return None
    if not isinstance(schema, Mapping):
        return "example"  # `true` or a bare property: anything goes
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            return example_value(_first_non_null(branches), root, depth + 1)
    all_of = schema.get("allOf")
    if isinstance(all_of, list) and all_of:
        return example_value(_merge(schema, all_of, root), root, depth + 1)
    kind = _type(schema)
    if kind == "object":
        return _object(schema, root, depth)
    if kind == "array":
        count = schema.get("minItems")
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            return [example_value(schema.get("items", {}), root, depth + 1) for _ in range(min(count, 8))]
        return []
    return _BY_TYPE.get(kind, "example")


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """`schema` with local `$ref`s (`#/$defs/X`, `#/definitions/X`, `#`) replaced by their targets (the
    referring schema's other keys win); an unresolvable reference is dropped."""
    for _ in range(_MAX_DEPTH):
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return schema
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        target = _pointer(root, ref)
        if target is None:
            return rest
        schema = {**target, **rest}
    return {k: v for k, v in schema.items() if k != "$ref"}


def _pointer(root: Mapping[str, Any], ref: str) -> Mapping[str, Any] | None:
    if not ref.startswith("#"):
        return None  # remote references are not followed
    target: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        target = target.get(part) if isinstance(target, Mapping) else None
    return target if isinstance(target, Mapping) else None


def _first_non_null(branches: list[Any]) -> Any:
    for branch in branches:
        if not (isinstance(branch, Mapping) and _type(branch) == "null"):
            return branch
    return branches[0]


def _merge(schema: Mapping[str, Any], parts: list[Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """`allOf` as one schema: the parts' keys (later wins), their properties and required lists joined."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties: dict[str, Any] = dict(_mapping(schema.get("properties")))
    required: list[Any] = list(_list(schema.get("required")))
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        part = _resolve(part, root)
        merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
        properties.update(_mapping(part.get("properties")))
        required.extend(r for r in _list(part.get("required")) if r not in required)
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


def _object(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> dict[str, Any]:
    properties = _mapping(schema.get("properties"))
    return {
        name: example_value(properties.get(name, {}), root, depth + 1)
        for name in _list(schema.get("required"))
        if isinstance(name, str)
    }


def _type(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if isinstance(k, str) and k.lower() != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
