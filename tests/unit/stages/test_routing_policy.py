"""Routing under a tenant policy: targets that do not qualify are left out of the plan for every node type
(single, fallback, loadbalance, conditional, experiment), recorded in ``Plan.skipped`` with the reason,
and an empty plan when nothing qualifies. Without a policy the plan is what it always was."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from infra.bootstrap import parse_config
from infra.config import ConfigError
from schemas.governance import Access
from stages.routing import Plan, RequestFacts, Router

PROVIDERS = {
    "eu1": {"type": "openai", "base_url": "http://eu1", "tags": {"region": "eu", "compliance": ["hipaa", "soc2"]}},
    "eu2": {"type": "anthropic", "base_url": "http://eu2", "tags": {"region": "eu"}},
    "us": {"type": "gemini", "base_url": "http://us", "tags": {"region": "us", "compliance": "soc2"}},
    "bare": {"type": "cohere", "base_url": "http://bare"},
}
EU = Access(require_tags={"region": "eu"})
FACTS = RequestFacts(model="m")


def router(route: dict[str, Any]) -> Router:
    return Router(parse_config({"providers": PROVIDERS, "models": {"m": {"route": route}}}), lambda t: None)


def single(provider: str, model: str, **extra: Any) -> dict[str, Any]:
    return {"provider": provider, "model": model, **extra}


def variant(name: str, weight: float, route: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "weight": weight, "route": route}


def plan(route: dict[str, Any], access: Access | None, facts: RequestFacts = FACTS, seed: int = 0) -> Plan:
    return router(route).plan(facts, None, random.Random(seed), access)


def ids(p: Plan) -> list[str]:
    return [t.id for t in p.targets]


def test_provider_tags_are_config() -> None:
    config = parse_config({"providers": PROVIDERS})
    assert config.providers["eu1"].tags == {"region": "eu", "compliance": ["hipaa", "soc2"]}
    assert config.providers["bare"].tags == {}
    with pytest.raises(ConfigError):
        parse_config({"providers": {"x": {"type": "openai", "tags": {"region": 3}}}})


def test_single_qualifying_and_not() -> None:
    assert ids(plan(single("eu1", "a"), EU)) == ["eu1/a"]
    ruled_out = plan(single("us", "b"), EU)
    assert ruled_out.targets == [] and ruled_out.skipped == {"us/b": "region=us, needs eu"}


def test_no_policy_plans_as_before() -> None:
    route = {"type": "fallback", "children": [single("us", "1"), single("eu1", "2")]}
    p = plan(route, None)
    assert ids(p) == ["us/1", "eu1/2"] and p.skipped == {}


def test_fallback_keeps_the_qualifying_children_in_order() -> None:
    route = {"type": "fallback", "children": [single("us", "1"), single("eu1", "2"), single("bare", "3"),
                                              single("eu2", "4")]}
    p = plan(route, EU)
    assert ids(p) == ["eu1/2", "eu2/4"]
    assert p.skipped == {"us/1": "region=us, needs eu", "bare/3": "no region tag, needs eu"}
    # the paths still name the place in the tree
    assert [t.path for t in p.targets] == ["route.children.1", "route.children.3"]


def test_list_valued_tags_and_the_provider_allowlist() -> None:
    route = {"type": "fallback", "children": [single("eu1", "1"), single("eu2", "2"), single("us", "3")]}
    p = plan(route, Access(require_tags={"compliance": "hipaa"}))
    assert ids(p) == ["eu1/1"]
    assert p.skipped == {"eu2/2": "no compliance tag, needs hipaa", "us/3": "compliance=soc2, needs hipaa"}
    p = plan(route, Access(providers=["us", "eu2"]))
    assert ids(p) == ["eu2/2", "us/3"] and p.skipped == {"eu1/1": "provider 'eu1' not allowed"}


def test_loadbalance_ranks_only_qualifying_children() -> None:
    route = {"type": "loadbalance", "children": [single("us", "1", weight=100), single("eu1", "2", weight=1),
                                                 single("eu2", "3", weight=1)]}
    for seed in range(30):
        p = plan(route, EU, seed=seed)
        assert sorted(ids(p)) == ["eu1/2", "eu2/3"] and p.skipped == {"us/1": "region=us, needs eu"}


def test_loadbalance_without_failover_picks_among_the_qualifying() -> None:
    # the heavy child would be chosen nearly always; the policy rules it out, so the other serves
    route = {"type": "loadbalance", "failover": False, "children": [single("us", "1", weight=1000),
                                                                    single("eu1", "2", weight=1)]}
    for seed in range(30):
        assert ids(plan(route, EU, seed=seed)) == ["eu1/2"]


def test_loadbalance_sticky_keeps_its_choice_among_the_qualifying() -> None:
    route = {"type": "loadbalance", "sticky": "user", "children": [single("eu1", "1"), single("eu2", "2"),
                                                                   single("us", "3")]}
    for i in range(50):
        facts = RequestFacts(model="m", user=f"u{i}")
        firsts = {ids(plan(route, EU, facts, seed))[0] for seed in range(3)}
        assert len(firsts) == 1 and firsts <= {"eu1/1", "eu2/2"}


def test_conditional_keeps_the_matched_branch_filtered() -> None:
    route = {"type": "conditional", "branches": [
        {"when": {"tenant": ["acme"]}, "route": {"type": "fallback", "children": [single("us", "1"),
                                                                                  single("eu2", "2")]}},
    ], "default": single("eu1", "d")}
    p = plan(route, EU, RequestFacts(model="m", tenant="acme"))
    assert ids(p) == ["eu2/2"] and p.skipped == {"us/1": "region=us, needs eu"}
    # the matched branch has nothing that qualifies: refused, not sent to the default
    only_us = {"type": "conditional", "branches": [{"when": {"tenant": ["acme"]}, "route": single("us", "1")}],
               "default": single("eu1", "d")}
    p = plan(only_us, EU, RequestFacts(model="m", tenant="acme"))
    assert p.targets == [] and p.skipped == {"us/1": "region=us, needs eu"}


def test_experiment_draws_among_the_variants_with_a_qualifying_target() -> None:
    route = {"type": "experiment", "name": "x", "sticky": None, "variants": [
        {"name": "us-arm", "weight": 90, "route": single("us", "1")},
        {"name": "eu-arm", "weight": 10, "route": {"type": "fallback", "children": [single("eu1", "2"),
                                                                                    single("bare", "3")]}}]}
    seen: Counter[str] = Counter()
    for seed in range(200):
        p = plan(route, EU, seed=seed)
        assert (p.experiment, p.variant) == ("x", "eu-arm")
        assert ids(p) == ["eu1/2"]
        assert "bare/3" in p.skipped
        seen["us" in " ".join(p.skipped)] += 1
    # the us arm was drawn (and ruled out) about 90 % of the time; the eu arm's own skip always
    assert 150 < seen[True] < 200


def test_experiment_with_no_qualifying_variant_is_empty_and_unrecorded() -> None:
    route = {"type": "experiment", "name": "x", "variants": [
        variant("a", 1, single("us", "1")), variant("b", 1, single("bare", "2"))]}
    p = plan(route, EU, RequestFacts(model="m", user="u1"))
    assert p.targets == [] and (p.experiment, p.variant) == ("", "")
    assert p.skipped == {"us/1": "region=us, needs eu", "bare/2": "no region tag, needs eu"}


def test_nested_experiment_records_the_outermost() -> None:
    inner = {"type": "experiment", "name": "inner", "variants": [
        variant("i1", 1, single("eu1", "1")), variant("i2", 1, single("eu2", "2"))]}
    route = {"type": "experiment", "name": "outer", "variants": [
        {"name": "o-us", "weight": 50, "route": single("us", "3")}, {"name": "o-eu", "weight": 1, "route": inner}]}
    for i in range(30):
        p = plan(route, EU, RequestFacts(model="m", user=f"u{i}"))
        assert (p.experiment, p.variant) == ("outer", "o-eu")
        assert len(p.targets) == 1 and p.targets[0].provider in ("eu1", "eu2")


def test_experiment_unchanged_without_a_policy() -> None:
    route = {"type": "experiment", "name": "x", "variants": [
        variant("a", 1, single("us", "1")), variant("b", 1, single("eu1", "2"))]}
    r = router(route)
    for i in range(50):
        facts = RequestFacts(model="m", user=f"u{i}")
        p = r.plan(facts, None, random.Random(0))
        assert ids(p) == (["us/1"] if p.variant == "a" else ["eu1/2"])
        assert p.skipped == {}


def test_a_target_listed_twice_is_skipped_once() -> None:
    route = {"type": "fallback", "children": [single("us", "1"), single("eu1", "2"), single("us", "1")]}
    p = plan(route, EU)
    assert ids(p) == ["eu1/2"] and p.skipped == {"us/1": "region=us, needs eu"}
