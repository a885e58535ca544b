"""The answer against the request's response_format: JSON, JSON object, JSON schema."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from stages.guardrails.base import Subject
from stages.guardrails.response_format import ResponseFormat, ResponseFormatSettings

SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
          "required": ["name", "age"], "additionalProperties": False}


def guard(**settings: Any) -> ResponseFormat:
    return ResponseFormat(ResponseFormatSettings.model_validate(settings))


def schema_format(schema: Any) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": schema}}


def answer(text: str, response_format: Any = None, response: dict[str, Any] | None = None) -> Subject:
    request: dict[str, Any] = {"model": "m", "messages": []}
    if response_format is not None:
        request["response_format"] = response_format
    return Subject(phase="output", request=request, answer=text, response=response)


def test_valid_answer_passes() -> None:
    result = guard().check(answer('{"name": "Ada", "age": 36}', schema_format(SCHEMA)))
    assert result.score == 0 and result.findings == {}


def test_schema_violations_are_counted_without_values() -> None:
    result = guard().check(answer('{"name": 7, "age": -1, "extra": "secret-value"}', schema_format(SCHEMA)))
    assert result.score == 1.0
    assert result.findings == {"schema_violation": 3}
    assert guard(max_errors=2).check(answer('{"name": 7, "age": -1, "x": 1}', schema_format(SCHEMA))).findings == {
        "schema_violation": 2}


@pytest.mark.parametrize("text", ["not json", '```json\n{"name": "Ada", "age": 1}\n```', ""])
def test_invalid_json(text: str) -> None:
    assert guard().check(answer(text, schema_format(SCHEMA))).findings == {"invalid_json": 1}


def test_json_object() -> None:
    g = guard()
    assert g.check(answer('{"a": 1}', {"type": "json_object"})).score == 0
    assert g.check(answer("[1, 2]", {"type": "json_object"})).findings == {"not_an_object": 1}
    assert g.check(answer("nope", {"type": "json_object"})).findings == {"invalid_json": 1}


@pytest.mark.parametrize("response_format", [None, {"type": "text"}, "json", {"type": "json_schema"}])
def test_nothing_to_check(response_format: Any) -> None:
    result = guard().check(answer("free text", response_format))
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        assert result.findings == {"invalid_json": 1}  # JSON was asked for, even without a schema
    else:
        assert result.score == 0 and result.findings == {}


def test_tool_call_answers_are_skipped() -> None:
    response = {"choices": [{"message": {"role": "assistant", "content": None, "tool_calls": [{"id": "c1"}]}}]}
    assert guard().check(answer("", schema_format(SCHEMA), response)).findings == {}
    assert guard().check(answer("", schema_format(SCHEMA), {"choices": []})).findings == {"invalid_json": 1}


def test_schema_draft_comes_from_the_schema_or_the_setting() -> None:
    # 2020-12 ignores the pre-2019 "dependencies" keyword; draft 7 enforces it
    schema = {"type": "object", "dependencies": {"a": ["b"]}}
    assert guard().check(answer('{"a": 1}', schema_format(schema))).score == 0
    assert guard(draft="7").check(answer('{"a": 1}', schema_format(schema))).score == 1.0
    pinned = {"$schema": "http://json-schema.org/draft-07/schema#", **schema}
    assert guard().check(answer('{"a": 1}', schema_format(pinned))).score == 1.0


def test_broken_schema_is_recorded_not_blamed_on_the_answer() -> None:
    result = guard().check(answer("{}", schema_format({"type": "no-such-type"})))
    assert result.score == 0 and result.findings == {"invalid_schema": 1}
    assert guard().check(answer("{}", schema_format(["not", "a", "schema"]))).findings == {"invalid_schema": 1}


def test_remote_refs_are_never_fetched() -> None:
    remote = {"$ref": "http://127.0.0.1:9/schema.json"}
    assert guard().check(answer("{}", schema_format(remote))).findings == {"invalid_schema": 1}


def test_local_refs_resolve() -> None:
    schema = {"$defs": {"n": {"type": "integer"}}, "type": "object", "properties": {"x": {"$ref": "#/$defs/n"}}}
    assert guard().check(answer('{"x": "s"}', schema_format(schema))).findings == {"schema_violation": 1}


def test_validators_are_cached_by_schema_and_bounded() -> None:
    g = guard(cache_size=2)
    first = g.validator({"type": "object", "required": ["a"]})
    assert g.validator({"required": ["a"], "type": "object"}) is first  # same schema, other key order
    g.validator({"type": "array"})
    g.validator({"type": "string"})
    assert len(g._validators) == 2
    assert g.validator({"type": "object", "required": ["a"]}) is not first  # evicted, rebuilt


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        ResponseFormatSettings.model_validate({"draft": "3"})
