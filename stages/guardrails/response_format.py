"""``response_format``: does the answer honour the request's ``response_format`` (output phase)?

- ``{"type": "json_schema", "json_schema": {"schema": {...}}}``: the answer must parse as JSON and
  validate against the schema (``jsonschema``; the schema's ``$schema`` picks the draft, else
  ``draft``, 2020-12 by default). Compiled validators are cached by the schema's canonical JSON in a
  bounded LRU, so a schema used on every request is checked and compiled once.
- ``{"type": "json_object"}``: the answer must parse to a JSON object.
- anything else (or none): nothing to check, score 0.

An answer that is only tool calls (empty text, ``tool_calls`` in the response) is not checked.
Findings: ``invalid_json``, ``not_an_object``, ``schema_violation`` (errors found, up to
``max_errors``), ``invalid_schema`` (the caller's schema itself is broken: recorded, score 0);
never a value from the answer. A ``$ref`` to anything outside the schema is never fetched.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import orjson
from jsonschema import validators
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field
from referencing import Registry

from schemas.guardrails import Phase
from stages.guardrails.base import PASS, Guardrail, Result, Subject

Draft = Literal["2020-12", "2019-09", "7", "6", "4"]
_DRAFTS: dict[str, Any] = {
    "2020-12": validators.Draft202012Validator,
    "2019-09": validators.Draft201909Validator,
    "7": validators.Draft7Validator,
    "6": validators.Draft6Validator,
    "4": validators.Draft4Validator,
}
_BROKEN = object()  # cached for a schema that does not compile
_NO_RETRIEVAL: Registry[Any] = Registry()


class ResponseFormatSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    draft: Draft = Field(default="2020-12", description="for schemas without a $schema")
    cache_size: int = Field(default=256, ge=1, le=100_000, description="compiled validators kept (LRU)")
    max_errors: int = Field(default=20, ge=1, le=1000, description="schema violations counted at most")


def _has_tool_calls(response: Mapping[str, Any] | None) -> bool:
    if not response:
        return False
    for choice in response.get("choices") or []:
        if isinstance(choice, Mapping):
            message = choice.get("message") or {}
            if isinstance(message, Mapping) and message.get("tool_calls"):
                return True
    return False


class ResponseFormat(Guardrail):
    phase: ClassVar[Phase] = "output"
    Settings: ClassVar[type[BaseModel]] = ResponseFormatSettings

    def __init__(self, settings: BaseModel) -> None:
        super().__init__(settings)
        assert isinstance(settings, ResponseFormatSettings)
        self.options = settings
        self.default_draft = _DRAFTS[settings.draft]
        self._validators: OrderedDict[bytes, Any] = OrderedDict()

    def validator(self, schema: Any) -> Any:
        """The compiled validator of ``schema`` (``None`` if the schema is broken), from the LRU cache."""
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        cached = self._validators.get(key)
        if cached is not None:
            self._validators.move_to_end(key)
            return None if cached is _BROKEN else cached
        try:
            cls = validators.validator_for(schema, default=self.default_draft)
            cls.check_schema(schema)
            # an empty registry: a remote ``$ref`` is unresolvable, never fetched (no I/O, no SSRF)
            value: Any = cls(schema, registry=_NO_RETRIEVAL)
        except (SchemaError, TypeError, ValueError, LookupError):
            value = _BROKEN
        self._validators[key] = value
        if len(self._validators) > self.options.cache_size:
            self._validators.popitem(last=False)
        return None if value is _BROKEN else value

    def check(self, subject: Subject) -> Result:
        spec = subject.request.get("response_format")
        if not isinstance(spec, Mapping):
            return PASS
        kind = spec.get("type")
        if kind not in ("json_schema", "json_object"):
            return PASS
        if not subject.answer.strip() and _has_tool_calls(subject.response):
            return PASS
        try:
            document = orjson.loads(subject.answer)
        except orjson.JSONDecodeError:
            return Result(score=1.0, findings={"invalid_json": 1})
        if kind == "json_object":
            return PASS if isinstance(document, dict) else Result(score=1.0, findings={"not_an_object": 1})
        wrapper = spec.get("json_schema")
        schema = wrapper.get("schema") if isinstance(wrapper, Mapping) else None
        if schema is None:
            return PASS  # no schema given: any JSON will do
        if not isinstance(schema, (Mapping, bool)):
            return Result(findings={"invalid_schema": 1})
        try:
            validator = self.validator(schema)
        except orjson.JSONEncodeError:
            return Result(findings={"invalid_schema": 1})
        if validator is None:
            return Result(findings={"invalid_schema": 1})
        try:
            errors = sum(1 for _ in itertools.islice(validator.iter_errors(document), self.options.max_errors))
        except Exception:  # noqa: BLE001 - an unresolvable $ref and the like: the schema's fault, not the answer's
            return Result(findings={"invalid_schema": 1})
        return Result(score=1.0, findings={"schema_violation": errors}) if errors else PASS
