"""Every ``env:NAME`` reference in a parsed config, found from the models' types, by the stage that
resolves it."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from schemas.config import GatewayConfig
from schemas.secret_refs import PROVIDER_SECRET, referenced_secrets, variable_of


def _config() -> GatewayConfig:
    return GatewayConfig.model_validate({
        "providers": {
            "openai": {"type": "openai", "api_key": "env:OPENAI_API_KEY"},
            "anthropic": {"type": "anthropic", "api_key": "env:ANTHROPIC_API_KEY"},
            "local": {"type": "ollama", "headers": {"x-note": "env:NOT_A_REFERENCE"}},
            "aws": {"type": "bedrock", "region": "eu-west-1", "access_key_id": "env:AWS_KEY_ID",
                    "secret_access_key": "env:AWS_SECRET", "session_token": "env:AWS_TOKEN"},
            "shared": {"type": "groq", "api_key": "env:OPENAI_API_KEY"},
        },
        "redaction": {"operator": "hash", "hash_salt": "env:PII_SALT"},
        "guardrail_profiles": {"strict": {"redaction": {"operator": "hash", "hash_salt": "env:STRICT_SALT"}}},
    })


def test_references_by_the_stage_that_resolves_them() -> None:
    assert referenced_secrets(_config()) == {
        "provider": frozenset({"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_KEY_ID", "AWS_SECRET", "AWS_TOKEN"}),
        "redaction": frozenset({"PII_SALT", "STRICT_SALT"}),
    }


def test_a_config_without_references_has_none() -> None:
    config = GatewayConfig.model_validate({"providers": {"local": {"type": "ollama"}}})
    assert referenced_secrets(config) == {}


def test_found_in_lists_and_dicts_of_models() -> None:
    class Sub(BaseModel):
        key: PROVIDER_SECRET = None
        note: str = "env:NOT_TYPED_AS_A_SECRET"

    class Part(BaseModel):
        items: list[Sub]
        named: dict[str, Sub]
        key: PROVIDER_SECRET = None

    part = Part(items=[Sub(key="env:A"), Sub()], named={"x": Sub(key="env:B")}, key="env:C")
    assert referenced_secrets(part) == {"provider": frozenset({"A", "B", "C"})}


def test_the_type_refuses_a_value() -> None:
    class Part(BaseModel):
        key: PROVIDER_SECRET = None

    with pytest.raises(ValidationError, match="env:NAME"):
        Part(key="sk-live-abc")


def test_variable_of() -> None:
    assert variable_of("env:OPENAI_API_KEY") == "OPENAI_API_KEY"
