"""The GW_BREAKERS key of a target id (``workers/health_wire.py``): valid, readable and reversible."""

from __future__ import annotations

import pytest
from nats.js.kv import _is_key_valid

from workers.health_wire import breaker_key, target_of_key


@pytest.mark.parametrize(("target_id", "key"), [
    ("openai/gpt-4o", "openai.gpt-4o"),
    ("openai/gpt-4.1", "openai.gpt-4=2E1"),
    ("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "bedrock.anthropic=2Eclaude-3-5-sonnet-20240620-v1=3A0"),
    ("openrouter/meta-llama/llama-3-70b", "openrouter.meta-llama.llama-3-70b"),
    ("vertex/claude@2024", "vertex.claude=402024"),
    ("a//b", "a.=2Fb"),
    ("/x", "=2Fx"),
    ("x/", "x=2F"),
    ("é/ü=1", "=C3=A9.=C3=BC=3D1"),
])
def test_breaker_key_is_valid_readable_and_reversible(target_id: str, key: str) -> None:
    assert breaker_key(target_id) == key
    assert _is_key_valid(key) and "" not in key.split(".")
    assert target_of_key(key) == target_id


def test_breaker_key_refuses_an_empty_id() -> None:
    with pytest.raises(ValueError):
        breaker_key("")
