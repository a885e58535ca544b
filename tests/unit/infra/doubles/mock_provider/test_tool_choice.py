"""Forced tool choice of the mock provider: example arguments from a function's JSON schema and the
choice of the function (`infra/doubles/mock_provider/tool_choice.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from infra.doubles.mock_provider.directives import ToolCall
from infra.doubles.mock_provider.tool_choice import (
    Function,
    UnknownFunction,
    example_arguments,
    forced_call,
    function_tools,
)


def test_required_properties_by_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer"},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "a": {"type": "array", "items": {"type": "string"}},
            "o": {"type": "object"},
            "e": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "optional": {"type": "string"},
        },
        "required": ["s", "i", "n", "b", "a", "o", "e"],
    }
    assert example_arguments(schema) == {
        "s": "example",
        "i": 1,
        "n": 1.0,
        "b": True,
        "a": [],
        "o": {},
        "e": "celsius",
    }


def test_nested_required_objects_recursively() -> None:
    schema = {
        "type": "object",
        "properties": {
            "when": {
                "type": "object",
                "properties": {
                    "date": {"type": "string", "format": "date"},
                    "slot": {"type": "object", "properties": {"hour": {"type": "integer"}}, "required": ["hour"]},
                    "note": {"type": "string"},
                },
                "required": ["date", "slot"],
            }
        },
        "required": ["when"],
    }
    assert example_arguments(schema) == {"when": {"date": "example", "slot": {"hour": 1}}}


def test_key_order_follows_required() -> None:
    properties = {"a": {"type": "string"}, "b": {"type": "integer"}}
    schema = {"type": "object", "properties": properties, "required": ["b", "a"]}
    assert list(example_arguments(schema)) == ["b", "a"]


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ({"const": "fixed"}, "fixed"),
        ({"enum": [3, 4]}, 3),
        ({"type": ["null", "integer"]}, 1),
        ({"anyOf": [{"type": "null"}, {"type": "boolean"}]}, True),
        ({"oneOf": [{"type": "number"}, {"type": "string"}]}, 1.0),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [1, 1]),
        ({"type": "null"}, None),
        ({}, "example"),
        ({"items": {"type": "string"}}, []),
        ({"properties": {"x": {"type": "integer"}}, "required": ["x"]}, {"x": 1}),
        ({"type": "STRING"}, "example"),  # Gemini's OpenAPI-style type names
        ({"type": "INTEGER"}, 1),
    ],
)
def test_values(prop: dict[str, Any], value: Any) -> None:
    assert example_arguments({"type": "object", "properties": {"p": prop}, "required": ["p"]}) == {"p": value}


def test_required_without_a_property_schema() -> None:
    assert example_arguments({"type": "object", "required": ["free"]}) == {"free": "example"}


def test_local_refs_and_all_of() -> None:
    schema = {
        "$defs": {
            "Unit": {"type": "string", "enum": ["c", "f"]},
            "Place": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
        "type": "object",
        "properties": {
            "unit": {"$ref": "#/$defs/Unit"},
            "place": {"$ref": "#/$defs/Place", "description": "where"},
            "both": {
                "allOf": [{"$ref": "#/$defs/Place"}, {"properties": {"zip": {"type": "integer"}}, "required": ["zip"]}]
            },
            "missing": {"$ref": "#/$defs/Nope"},
        },
        "required": ["unit", "place", "both", "missing"],
    }
    assert example_arguments(schema) == {
        "unit": "c",
        "place": {"city": "example"},
        "both": {"city": "example", "zip": 1},
        "missing": "example",
    }


def test_recursive_schema_ends() -> None:
    schema = {"type": "object", "properties": {"next": {"$ref": "#"}}, "required": ["next"]}
    value = example_arguments(schema)
    depth = 0
    while isinstance(value, dict):
        value = value["next"]
        depth += 1
    assert value is None and depth > 10


@pytest.mark.parametrize("schema", [None, {}, {"type": "object"}, {"type": "string"}, "not a schema"])
def test_no_arguments(schema: Any) -> None:
    assert example_arguments(schema) == {}


def test_example_arguments_are_deterministic() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert forced_call([Function("f", schema)]) == forced_call([Function("f", schema)])


def test_forced_call_first_or_named() -> None:
    functions = [
        Function("first", {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
        Function("second", None),
    ]
    assert forced_call(functions) == ToolCall("first", '{"q":"example"}')
    assert forced_call(functions, "second") == ToolCall("second", "{}")
    with pytest.raises(UnknownFunction):
        forced_call(functions, "third")
    with pytest.raises(UnknownFunction):
        forced_call([])


def test_function_tools() -> None:
    tools = [
        {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
        {"function": {"name": "b"}},  # type defaults to function
        {"type": "custom", "custom": {"name": "c"}},
        {"type": "function", "function": {"description": "no name"}},
        "junk",
    ]
    assert function_tools(tools) == [Function("a", {"type": "object"}), Function("b", None)]
    assert function_tools(None) == []
