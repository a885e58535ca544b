"""`gateway replay --dry-run`: the plan under a config with the routing stage's logic, the breaker
states applied, policy skips and refusals, and the notes on what a dry run cannot see."""

from __future__ import annotations

from typing import Any

from infra.operator.replay_breakers import effective_state
from infra.operator.replay_plan import plan_route
from tests.unit.infra.operator.replay_rows import config, logged


def plan(breakers: dict[str, str] | None = None, cfg: Any = None, **row: Any) -> Any:
    return plan_route(cfg or config(), logged(**row), version="v1", source="file:x.yaml",
                      breakers={} if breakers is None else breakers)


def test_the_plan_of_the_active_route() -> None:
    planned = plan()
    assert planned.first == "mock-openai/gpt-4o-mini" and planned.path == "targets.children.0"
    assert [s.target for s in planned.steps] == ["mock-openai/gpt-4o-mini", "mock-anthropic/claude-3-5-haiku-latest"]
    assert planned.error == "" and planned.error_status == 0
    assert any("headers are not recorded" in n for n in planned.notes)
    assert not any("random draw" in n for n in planned.notes)


def test_an_open_breaker_moves_the_route_and_a_half_open_one_is_probed() -> None:
    planned = plan({"mock-openai/gpt-4o-mini": "open"})
    assert planned.first == "mock-anthropic/claude-3-5-haiku-latest" and planned.path == "targets.children.1"
    assert [s.breaker for s in planned.steps] == ["open", "closed"]
    assert plan({"mock-openai/gpt-4o-mini": "half_open"}).first == "mock-openai/gpt-4o-mini"


def test_every_breaker_open_is_the_chains_503() -> None:
    planned = plan({"mock-openai/gpt-4o-mini": "open", "mock-anthropic/claude-3-5-haiku-latest": "open"})
    assert planned.first == "" and (planned.error_status, planned.error_code) == (503, "circuit_open")


def test_unreadable_breakers_are_said_not_assumed() -> None:
    planned = plan_route(config(), logged(), version="v1", source="s", breakers=None)
    assert {s.breaker for s in planned.steps} == {"unknown"}
    assert planned.first == "mock-openai/gpt-4o-mini"
    assert any("breaker states not read" in n for n in planned.notes)


def test_a_model_the_config_does_not_have() -> None:
    planned = plan(model_requested="gone")
    assert (planned.error_status, planned.error_code) == (404, "model_not_found")
    assert "Known models" in planned.error and planned.steps == []


def test_a_random_draw_is_flagged() -> None:
    balanced = {"route": {"type": "loadbalance", "strategy": "weighted", "children": [
        {"provider": "mock-openai", "model": "gpt-4o-mini"},
        {"provider": "mock-gemini", "model": "gemini-2.0-flash"}]}}
    cfg = config(models={**config().model_dump(mode="json")["models"], "gpt-4o-mini": balanced})
    planned = plan(cfg=cfg)
    again = plan(cfg=cfg)
    assert planned.first == again.first  # seeded by the request id: the same answer every time
    assert any("random draw" in n for n in planned.notes)


def test_the_keys_tenant_policy_leaves_targets_out() -> None:
    raw = config().model_dump(mode="json", exclude_none=True)
    raw["keys"][0]["access"] = {"providers": ["mock-anthropic"]}
    planned = plan(cfg=config(keys=raw["keys"]))
    assert planned.first == "mock-anthropic/claude-3-5-haiku-latest"
    assert "mock-openai/gpt-4o-mini" in planned.skipped


def test_a_key_not_in_the_file_is_noted() -> None:
    planned = plan(api_key_id="made-with-keys-create")
    assert any("not in this config file" in n for n in planned.notes)


def test_breaker_values_as_stored() -> None:
    now = 1000.0
    assert effective_state({"state": "open", "since": now - 10, "cooldown_s": 30}, now) == "open"
    assert effective_state({"state": "open", "since": now - 40, "cooldown_s": 30}, now) == "half_open"
    assert effective_state({"state": "half_open"}, now) == "half_open"
    assert effective_state({"state": "weird"}, now) == "closed"
    assert effective_state(None, now) == "closed"
