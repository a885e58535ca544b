"""Routing: an alias's tree becomes the request's ordered plan, each step with its inherited settings."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from infra.bootstrap import parse_config
from infra.config import ConfigError
from schemas.config import GatewayConfig
from schemas.errors import InvalidRequest, NotFound
from schemas.routing import DEFAULT_ON_STATUS_CODES, Price, Target
from stages.routing import RequestFacts, Router, unit_hash

PROVIDERS = {
    "a": {"type": "openai", "base_url": "http://a"},
    "b": {"type": "anthropic", "base_url": "http://b"},
    "c": {"type": "gemini", "base_url": "http://c"},
}


def config(models: dict[str, Any], **extra: Any) -> GatewayConfig:
    return parse_config({"providers": PROVIDERS, "models": models, **extra})


def router(models: dict[str, Any], prices: dict[str, Price] | None = None, **extra: Any) -> Router:
    table = prices or {}
    return Router(config(models, **extra), lambda t: table.get(f"{t.provider}/{t.model}"))


def ids(r: Router, facts: RequestFacts, stats: Any = None, seed: int = 0) -> list[str]:
    return [t.id for t in r.plan(facts, stats, random.Random(seed)).targets]


class Stats:
    def __init__(self, latency: dict[str, float] | None = None, inflight: dict[str, int] | None = None) -> None:
        self.latency = latency or {}
        self.busy = inflight or {}

    def latency_ms(self, target_id: str) -> float | None:
        return self.latency.get(target_id)

    def inflight(self, target_id: str) -> int:
        return self.busy.get(target_id, 0)


def single(provider: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"provider": provider, "model": model, **extra}


# -- the shorthand and fallbacks -------------------------------------------------------------------

def test_targets_shorthand_is_an_ordered_fallback() -> None:
    r = router({"fast": {"targets": [single("b", "b-1"), single("a", "a-1"), single("c", "c-1")]}})
    plan = r.plan(RequestFacts(model="fast"))
    assert [t.id for t in plan.targets] == ["b/b-1", "a/a-1", "c/c-1"]
    assert [t.path for t in plan.targets] == ["targets.children.0", "targets.children.1", "targets.children.2"]


def test_nested_fallback_flattens_depth_first() -> None:
    r = router({"m": {"route": {"type": "fallback", "children": [
        {"type": "fallback", "children": [single("a", "1"), single("b", "2")]},
        single("c", "3")]}}})
    assert ids(r, RequestFacts(model="m")) == ["a/1", "b/2", "c/3"]


def test_a_target_listed_twice_is_tried_once_at_its_first_place() -> None:
    children = [single("a", "1"), single("b", "2"), single("a", "1")]
    r = router({"m": {"route": {"type": "fallback", "children": children}}})
    assert ids(r, RequestFacts(model="m")) == ["a/1", "b/2"]


@pytest.mark.parametrize("model", ["unknown", "M ", ""])
def test_unknown_model_is_not_found(model: str) -> None:
    r = router({"m": {"targets": [single("a", "1")]}, "n": {"targets": [single("a", "2")]}})
    with pytest.raises(NotFound) as raised:
        r.plan(RequestFacts(model=model))
    assert (raised.value.status_code, raised.value.code, raised.value.param) == (404, "model_not_found", "model")
    assert "m, n" in raised.value.message


# -- settings inherited down the tree --------------------------------------------------------------

def test_retry_timeout_and_status_codes_inherit_and_override() -> None:
    r = router({"m": {"route": {
        "type": "fallback", "timeout_s": 20, "retry": {"attempts_per_target": 3},
        "children": [
            single("a", "1"),
            {"type": "fallback", "on_status_codes": [429], "retry": {"base_delay_ms": 7},
             "children": [single("b", "2", timeout_s=5), single("c", "3", retry={"attempts_per_target": 1})]},
        ]}}}, retry={"attempts_per_target": 2, "max_delay_ms": 900})
    a, b, c = r.plan(RequestFacts(model="m")).targets
    assert (a.retry.attempts_per_target, a.retry.max_delay_ms, a.timeout_s) == (3, 900, 20)
    assert a.on_status_codes == DEFAULT_ON_STATUS_CODES
    assert (b.retry.attempts_per_target, b.retry.base_delay_ms, b.timeout_s, b.on_status_codes) == (3, 7, 5, (429,))
    assert (c.retry.attempts_per_target, c.retry.base_delay_ms, c.timeout_s, c.on_status_codes) == (1, 7, 20, (429,))


# -- load balancing --------------------------------------------------------------------------------

def lb(strategy: str = "weighted", **extra: Any) -> dict[str, Any]:
    return {"m": {"route": {"type": "loadbalance", "strategy": strategy, "children": [
        single("a", "1", weight=3), single("b", "2", weight=1)], **extra}}}


def test_weighted_split_follows_the_weights_and_keeps_the_rest_as_failover() -> None:
    r = router(lb())
    firsts = Counter()
    rng = random.Random(7)
    for _ in range(4000):
        plan = r.plan(RequestFacts(model="m"), None, rng).targets
        assert sorted(t.id for t in plan) == ["a/1", "b/2"]
        firsts[plan[0].id] += 1
    assert 0.71 < firsts["a/1"] / 4000 < 0.79


def test_failover_false_keeps_only_the_chosen_child() -> None:
    r = router(lb(failover=False))
    assert len(r.plan(RequestFacts(model="m")).targets) == 1


def test_weight_zero_is_failover_only() -> None:
    r = router({"m": {"route": {"type": "loadbalance", "children": [single("a", "1", weight=0), single("b", "2")]}}})
    for seed in range(50):
        assert ids(r, RequestFacts(model="m"), seed=seed) == ["b/2", "a/1"]


def test_least_latency_prefers_the_fastest_measured_and_tries_unmeasured_first() -> None:
    r = router(lb("least_latency"))
    assert ids(r, RequestFacts(model="m"), Stats({"a/1": 300.0, "b/2": 40.0})) == ["b/2", "a/1"]
    assert ids(r, RequestFacts(model="m"), Stats({"a/1": 30.0, "b/2": 40.0})) == ["a/1", "b/2"]
    assert ids(r, RequestFacts(model="m"), Stats({"a/1": 30.0})) == ["b/2", "a/1"]


def test_least_busy_divides_in_flight_by_weight() -> None:
    r = router(lb("least_busy"))
    assert ids(r, RequestFacts(model="m"), Stats(inflight={"a/1": 5, "b/2": 2})) == ["a/1", "b/2"]  # 5/3 < 2/1
    assert ids(r, RequestFacts(model="m"), Stats(inflight={"a/1": 9, "b/2": 2})) == ["b/2", "a/1"]


def test_lowest_cost_ranks_by_price_and_unpriced_last() -> None:
    cheap = Price(input_per_mtok=0.1, output_per_mtok=0.4)  # type: ignore[arg-type]
    dear = Price(input_per_mtok=3, output_per_mtok=15)  # type: ignore[arg-type]
    models = {"m": {"route": {"type": "loadbalance", "strategy": "lowest_cost", "children": [
        single("a", "1"), single("b", "2"), single("c", "3")]}}}
    r = router(models, {"a/1": dear, "c/3": cheap})
    for seed in range(20):
        assert ids(r, RequestFacts(model="m"), seed=seed) == ["c/3", "a/1", "b/2"]


def test_lowest_cost_reads_the_price_catalog_through_the_price_function() -> None:
    seen: list[Target] = []
    r = Router(config(lb("lowest_cost")), lambda t: seen.append(t) or None)  # type: ignore[func-returns-value]
    r.plan(RequestFacts(model="m"))
    assert {t.model for t in seen} == {"1", "2"}


def test_sticky_keys_keep_their_target_and_spread_by_weight() -> None:
    r = router(lb(sticky="user"))
    users = [f"user-{i}" for i in range(2000)]
    first = {u: ids(r, RequestFacts(model="m", user=u), seed=s)[0] for s, u in enumerate(users)}
    for s, (user, target) in enumerate(first.items()):
        assert ids(r, RequestFacts(model="m", user=user), seed=s + 999)[0] == target
    share = Counter(first.values())["a/1"] / len(first)
    assert 0.70 < share < 0.80


def test_sticky_survives_another_child_leaving() -> None:
    three = {"m": {"route": {"type": "loadbalance", "sticky": "session", "children": [
        single("a", "1"), single("b", "2"), single("c", "3")]}}}
    two = {"m": {"route": {"type": "loadbalance", "sticky": "session", "children": [
        single("a", "1"), single("b", "2"), single("c", "3", weight=0)]}}}
    r3, r2 = router(three), router(two)
    moved = 0
    for i in range(500):
        facts = RequestFacts(model="m", headers={"x-gateway-session-id": f"s{i}"})
        before, after = ids(r3, facts)[0], ids(r2, facts)[0]
        if before != "c/3":
            assert after == before
        else:
            moved += 1
    assert moved > 100


def test_sticky_without_a_key_falls_back_to_the_strategy() -> None:
    r = router(lb("least_latency", sticky="tag:session"))
    assert ids(r, RequestFacts(model="m"), Stats({"a/1": 300.0, "b/2": 40.0})) == ["b/2", "a/1"]
    keyed = RequestFacts(model="m", tags={"session": "s1"})
    assert ids(r, keyed, seed=1) == ids(r, keyed, seed=2)


# -- conditional -----------------------------------------------------------------------------------

COND = {"m": {"route": {"type": "conditional", "branches": [
    {"when": {"tenant": ["acme"], "tags": {"tier": ["gold", "platinum"]}}, "route": single("a", "gold")},
    {"when": {"min_prompt_tokens": 100}, "route": single("b", "long")},
    {"when": {"headers": {"X-Region": "eu"}, "stream": True}, "route": single("c", "eu-stream")},
    {"when": {"user": ["vip"], "has_tools": True}, "route": single("a", "vip-tools")},
], "default": single("b", "default")}}}


@pytest.mark.parametrize(("facts", "expected"), [
    (RequestFacts(model="m", tenant="acme", tags={"tier": "gold"}), "a/gold"),
    (RequestFacts(model="m", tenant="acme", tags={"tier": "silver"}), "b/default"),
    (RequestFacts(model="m", tenant="other", tags={"tier": "gold"}), "b/default"),
    (RequestFacts(model="m", body={"messages": [{"role": "user", "content": "x" * 800}]}), "b/long"),
    (RequestFacts(model="m", body={"messages": [{"role": "user", "content": "short"}]}), "b/default"),
    (RequestFacts(model="m", headers={"x-region": "eu"}, stream=True), "c/eu-stream"),
    (RequestFacts(model="m", headers={"x-region": "eu"}, stream=False), "b/default"),
    (RequestFacts(model="m", user="vip", body={"tools": [{"type": "function"}]}), "a/vip-tools"),
    (RequestFacts(model="m", user="vip"), "b/default"),
])
def test_conditional_takes_the_first_matching_branch(facts: RequestFacts, expected: str) -> None:
    assert ids(router(COND), facts) == [expected]


def test_conditional_without_a_match_or_default_is_a_clear_400() -> None:
    r = router({"m": {"route": {"type": "conditional", "branches": [
        {"when": {"tenant": ["acme"]}, "route": single("a", "1")}]}}})
    with pytest.raises(InvalidRequest) as raised:
        r.plan(RequestFacts(model="m", tenant="other"))
    assert raised.value.code == "no_matching_route" and "route" in raised.value.message


# -- experiments -----------------------------------------------------------------------------------

EXPERIMENT = {"m": {"route": {"type": "experiment", "name": "prompt-v2", "variants": [
    {"name": "control", "weight": 80, "route": single("a", "1")},
    {"name": "treatment", "weight": 20,
     "route": {"type": "fallback", "children": [single("b", "2"), single("c", "3")]}},
]}}}


def test_experiment_splits_by_weight_and_records_the_variant() -> None:
    r = router(EXPERIMENT)
    rng = random.Random(3)
    seen = Counter()
    for _ in range(3000):
        plan = r.plan(RequestFacts(model="m"), None, rng)
        assert plan.experiment == "prompt-v2"
        seen[plan.variant] += 1
        # never falls back into the other arm
        assert [t.id for t in plan.targets] == (["a/1"] if plan.variant == "control" else ["b/2", "c/3"])
    assert 0.77 < seen["control"] / 3000 < 0.83


def test_experiment_is_sticky_per_user() -> None:
    r = router(EXPERIMENT)
    for i in range(200):
        facts = RequestFacts(model="m", user=f"u{i}")
        assert len({r.plan(facts, None, random.Random(s)).variant for s in range(5)}) == 1


# -- validation at load names the bad path ---------------------------------------------------------

@pytest.mark.parametrize(("models", "path"), [
    ({"m": {"route": {"type": "fallback", "children": [single("a", "1"), {"type": "loadbalance", "children": [
        single("zz", "2")]}]}}}, "models.m.route.children.1.children.0.provider: unknown provider 'zz'"),
    ({"m": {"route": {"type": "loadbalance", "children": [single("a", "1", weight=0)]}}},
     "models.m.route: at least one child needs a weight above 0"),
    ({"m": {"route": {"type": "fallback", "children": [single("a", "1", retry={"attempts_per_target": 0})]}}},
     "models.m.route.children.0.retry.attempts_per_target"),
    ({"m": {"route": {"type": "fallback", "children": [single("a", "1", on_status_codes=[200])]}}},
     "models.m.route.children.0.on_status_codes.0"),
    ({"m": {"route": {"type": "conditional", "branches": [{"when": {"tenat": ["x"]}, "route": single("a", "1")}]}}},
     "models.m.route.branches.0.when.tenat: Extra inputs are not permitted"),
    ({"m": {"route": {"type": "experiment", "name": "e", "variants": [
        {"name": "x", "weight": 1, "route": single("a", "1")},
        {"name": "x", "weight": 1, "route": single("b", "1")}]}}},
     "models.m.route: variant names must be unique"),
    ({"m": {"route": {"type": "roundrobin"}}}, "models.m.route: Input tag 'roundrobin'"),
    ({"m": {"route": {"type": "loadbalance", "sticky": "cookie", "children": [single("a", "1")]}}},
     "models.m.route.sticky"),
    ({"m": {"targets": [single("a", "1")], "route": single("a", "1")}}, "models.m: give either 'route'"),
])
def test_invalid_trees_are_refused_with_the_bad_path(models: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config(models)
    assert path in str(raised.value)


def test_unit_hash_is_stable_and_in_the_open_interval() -> None:
    values = [unit_hash("k", str(i)) for i in range(1000)]
    assert all(0 < v < 1 for v in values)
    assert unit_hash("k", "1") == unit_hash("k", "1") != unit_hash("k", "2")
