"""Routing: an alias becomes its ordered target plan; an unknown alias is a 404."""

from __future__ import annotations

import pytest

from schemas.config import GatewayConfig
from schemas.errors import NotFound
from stages.routing import plan_for


@pytest.fixture
def config() -> GatewayConfig:
    return GatewayConfig.model_validate({
        "providers": {
            "a": {"type": "openai", "base_url": "http://a"},
            "b": {"type": "anthropic", "base_url": "http://b"},
            "c": {"type": "gemini", "base_url": "http://c"},
        },
        "models": {
            "fast": {"targets": [
                {"provider": "b", "model": "b-1"},
                {"provider": "a", "model": "a-1"},
                {"provider": "c", "model": "c-1"},
            ]},
            "solo": {"targets": [{"provider": "a", "model": "a-2"}]},
        },
    })


def test_plan_keeps_configured_order(config: GatewayConfig) -> None:
    plan = plan_for("fast", config)
    assert [(t.provider, t.model) for t in plan] == [("b", "b-1"), ("a", "a-1"), ("c", "c-1")]


def test_plan_single_target(config: GatewayConfig) -> None:
    assert [t.model for t in plan_for("solo", config)] == ["a-2"]


def test_plan_is_a_copy(config: GatewayConfig) -> None:
    plan = plan_for("fast", config)
    plan.clear()
    assert len(plan_for("fast", config)) == 3


@pytest.mark.parametrize("model", ["unknown", "FAST", "fast ", ""])
def test_unknown_model_is_not_found(config: GatewayConfig, model: str) -> None:
    with pytest.raises(NotFound) as raised:
        plan_for(model, config)
    err = raised.value
    assert (err.status, err.code, err.param) == (404, "model_not_found", "model")
    assert err.to_body()["error"]["type"] == "invalid_request_error"
    assert "fast, solo" in err.message


def test_unknown_model_with_no_models() -> None:
    with pytest.raises(NotFound) as raised:
        plan_for("x", GatewayConfig())
    assert "none" in raised.value.message
