"""Credentials pasted into prompts: each format found by type, placeholders and prose left alone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from stages.guardrails.secrets import Secrets, SecretsSettings
from tests.unit.stages.guardrails.conftest import tool, user


def guard(**settings: Any) -> Secrets:
    return Secrets(SecretsSettings.model_validate(settings))


# Assembled at run time so that no complete credential-shaped literal sits in the repository.
ALNUM = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4Y5z6" * 2
SAMPLES = {
    "aws_access_key_id": "AKIA" + "IOSFODNN7EXAMPLE",
    "aws_secret_access_key": "aws_secret_access_key = " + "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "private_key": "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    "github_token": "ghp_" + ALNUM[:36],
    "gitlab_token": "glpat-" + ALNUM[:20],
    "slack_token": "xoxb-" + "123456789012-abcdefABCDEF",
    "stripe_key": "sk_live_" + ALNUM[:24],
    "anthropic_key": "sk-ant-api03-" + ALNUM[:90],
    "openai_key": "sk-proj-" + ALNUM[:48],
    "google_api_key": "AIza" + ALNUM[:35],
    "jwt": "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + ALNUM[:43],
}


@pytest.mark.parametrize(("kind", "value"), SAMPLES.items())
def test_each_format_is_found_by_type(kind: str, value: str) -> None:
    result = guard().check(user(f"my config uses {value} -- why does it fail?"))
    assert kind in result.findings
    assert result.score >= 0.9
    assert value not in json.dumps(result.findings)


def test_anthropic_key_is_not_also_an_openai_key() -> None:
    assert set(guard().check(user(SAMPLES["anthropic_key"])).findings) == {"anthropic_key"}


@pytest.mark.parametrize("text", [
    "password = hunter2hunter2",
    "DB_PASSWORD: 'S3cure!pass'",
    'api_key="4f9c2b7e81d34aa0"',
    "client_secret=Zx8Qw3Rt6Yu9",
])
def test_generic_assignments(text: str) -> None:
    result = guard().check(user(text))
    assert result.findings == {"generic_assignment": 1}
    assert result.score == pytest.approx(0.7)


@pytest.mark.parametrize("text", [
    "password = <your-password>",
    "api_key: ${OPENAI_API_KEY}",
    "api_key = os.environ['OPENAI_API_KEY']",
    "password=********",
    "secret: env:MY_SECRET",
    "What makes a good password? Mine is too short.",
    "The token: is in the header.",
    "Use sk-gateway-demo as the key.",
    "The AKIA prefix marks an AWS access key id.",
])
def test_placeholders_references_and_prose_pass(text: str) -> None:
    assert guard().check(user(text)).findings == {}


def test_counts_add_up_across_messages_and_tool_output() -> None:
    value = SAMPLES["github_token"]
    g = guard()
    assert g.check(user(f"{value} and {value}")).findings == {"github_token": 2}
    assert g.check(tool(value)).findings == {"github_token": 1}
    assert guard(scan_roles=["user"]).check(tool(value)).findings == {}


def test_types_and_generic_switch() -> None:
    g = guard(types=["jwt"], generic_assignments=False)
    assert g.check(user(SAMPLES["github_token"] + " password=hunter2hunter2")).findings == {}
    assert g.check(user(SAMPLES["jwt"])).findings == {"jwt": 1}
    with pytest.raises(ValidationError, match="unknown secret types"):
        SecretsSettings(types=["pgp"])


def test_cannot_redact() -> None:
    assert Secrets.supports_redact is False and Secrets.phase == "input"
