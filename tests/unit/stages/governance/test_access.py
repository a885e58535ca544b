"""Tenant policy's pure rules: key ∧ team ∧ tenant merged into one access, which targets qualify and
why not, the refusal when nothing can, and the max_tokens cap (refused, never clamped)."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.config_governance import GovernanceConfig
from schemas.errors import InvalidRequest, PermissionDenied
from schemas.governance import Access, LevelPolicy
from stages.governance.access import (
    check_max_tokens,
    describe,
    disqualification,
    effective_access,
    is_empty,
    key_access,
    merge_access,
    no_qualifying_target,
)

# -- merging ------------------------------------------------------------------------------------


def test_require_tags_are_the_union_of_every_level() -> None:
    merged = merge_access([("key 'k'", Access(require_tags={"region": "eu"})),
                           ("tenant 't'", Access(require_tags={"compliance": "hipaa", "region": "eu"}))])
    assert merged.require_tags == {"region": "eu", "compliance": "hipaa"}


def test_two_values_of_one_tag_are_both_required() -> None:
    merged = merge_access([("key 'k'", Access(require_tags={"compliance": "hipaa", "region": "eu"})),
                           ("team 'x'", Access(require_tags={"compliance": ["soc2", "hipaa"]})),
                           ("tenant 't'", Access(require_tags={"region": "eu"}))])
    assert merged.require_tags == {"compliance": ["hipaa", "soc2"], "region": "eu"}  # in the order asked
    assert disqualification(merged, "p", {"compliance": ["soc2", "hipaa", "iso"], "region": "eu"}) is None
    assert disqualification(merged, "p", {"compliance": ["hipaa"], "region": "eu"}) == (
        "compliance=[hipaa], needs hipaa, soc2")


def test_values_no_target_can_carry_together_leave_no_target() -> None:
    merged = merge_access([("key 'k'", Access(require_tags={"region": "eu"})),
                           ("tenant 't'", Access(require_tags={"region": "us"}))])
    assert merged.require_tags == {"region": ["eu", "us"]}
    assert disqualification(merged, "p", {"region": "eu"}) == "region=eu, needs eu, us"
    error = no_qualifying_target("gpt", merged, {"p/gpt": "region=eu, needs eu, us"})
    assert (error.status_code, error.code) == (403, "policy_denied")
    assert "requires region=[eu, us]" in error.message


def test_providers_are_the_intersection_of_the_non_empty_lists() -> None:
    merged = merge_access([("key", Access(providers=["a", "b", "c"])), ("team", Access()),
                           ("tenant", Access(providers=["c", "b", "z"]))])
    assert merged.providers == ["b", "c"]  # in the first list's order
    assert merge_access([("key", Access()), ("tenant", Access())]).providers == []  # every provider


def test_disjoint_provider_lists_refuse() -> None:
    with pytest.raises(PermissionDenied) as raised:
        merge_access([("key 'k'", Access(providers=["a"])), ("tenant 't'", Access(providers=["b"]))])
    assert raised.value.code == "policy_denied"
    assert "key 'k' allows a" in raised.value.message and "tenant 't' allows b" in raised.value.message


def test_max_tokens_is_the_smallest_cap_set() -> None:
    levels = [("key", Access(max_tokens=512)), ("team", Access()), ("tenant", Access(max_tokens=256))]
    assert merge_access(levels).max_tokens == 256
    assert merge_access([("key", Access())]).max_tokens is None


@pytest.mark.parametrize(("flags", "expected"), [
    ([True], True), ([True, True], True), ([True, False], False), ([False, True, True], False), ([], False)])
def test_allow_unpriced_only_when_every_level_with_rules_allows(flags: list[bool], expected: bool) -> None:
    assert merge_access([(f"l{i}", Access(allow_unpriced=f)) for i, f in enumerate(flags)]).allow_unpriced is expected


def test_no_rule_at_all_is_no_access_on_the_envelope() -> None:
    assert is_empty(merge_access([("key", Access()), ("tenant", Access())]))
    assert effective_access([("key", Access())]) is None
    assert effective_access([("key", Access(max_tokens=5))]) == Access(max_tokens=5)


def test_key_access_merges_the_team_and_tenant_that_have_a_policy() -> None:
    governance = GovernanceConfig.model_validate({
        "tenants": {"acme": {"access": {"require_tags": {"region": "eu"}, "max_tokens": 1000}}},
        "teams": {"ml": {"access": {"providers": ["a", "b"], "max_tokens": 300}}}})
    key = Access(providers=["b", "c"])
    assert key_access("k", key, "ml", "acme", governance.level) == Access(
        require_tags={"region": "eu"}, providers=["b"], max_tokens=300)
    # a team with no policy counts for nothing; so does no team
    assert key_access("k", key, "other", "acme", governance.level) == Access(
        require_tags={"region": "eu"}, providers=["b", "c"], max_tokens=1000)
    assert key_access("k", Access(), "", "nobody", governance.level) is None


def test_governance_config_levels_are_the_wire_contract() -> None:
    governance = GovernanceConfig.model_validate({"tenants": {"t": {"access": {"require_tags": {"region": "eu"}}}},
                                                  "teams": {"x": {}}})
    assert governance.level("tenant", "t") == LevelPolicy(kind="tenant", id="t",
                                                          access=Access(require_tags={"region": "eu"}))
    assert governance.level("team", "x") == LevelPolicy(kind="team", id="x")
    assert governance.level("team", "t") is None and governance.level("tenant", "") is None
    assert {(p.kind, p.id) for p in governance.level_policies()} == {("tenant", "t"), ("team", "x")}


# -- qualification ------------------------------------------------------------------------------

EU = Access(require_tags={"region": "eu"})


@pytest.mark.parametrize(("access", "provider", "tags", "reason"), [
    (EU, "p", {"region": "eu"}, None),
    (EU, "p", {"region": "us"}, "region=us, needs eu"),
    (EU, "p", {}, "no region tag, needs eu"),
    (Access(require_tags={"compliance": "hipaa"}), "p", {"compliance": ["hipaa", "soc2"]}, None),
    (Access(require_tags={"compliance": "hipaa"}), "p", {"compliance": ["soc2"]}, "compliance=[soc2], needs hipaa"),
    (Access(require_tags={"region": "eu", "compliance": "hipaa"}), "p", {"region": "us"},
     "region=us, needs eu; no compliance tag, needs hipaa"),
    (Access(providers=["azure-eu"]), "openai", {"region": "eu"}, "provider 'openai' not allowed"),
    (Access(providers=["openai"], require_tags={"region": "eu"}), "openai", {"region": "eu"}, None),
    (Access(max_tokens=10), "p", {}, None),
])
def test_disqualification_says_what_was_found_and_what_is_needed(
        access: Access, provider: str, tags: dict[str, Any], reason: str | None) -> None:
    assert disqualification(access, provider, tags) == reason


def test_no_qualifying_target_is_a_403_naming_the_rules_and_the_targets() -> None:
    access = Access(require_tags={"region": "eu"}, providers=["a", "b"])
    error = no_qualifying_target("gpt-4o", access, {"a/m1": "region=us, needs eu", "c/m2": "provider 'c' not allowed"})
    assert (error.status_code, error.type, error.code, error.param) == (403, "permission_error", "policy_denied",
                                                                       "model")
    assert "requires region=eu" in error.message and "providers: a, b" in error.message
    assert "a/m1 (region=us, needs eu)" in error.message and "c/m2 (provider 'c' not allowed)" in error.message
    assert describe(Access()) == "no routing rule"


# -- the max_tokens cap -------------------------------------------------------------------------

CAP = Access(max_tokens=100)


@pytest.mark.parametrize("body", [{"max_tokens": 100}, {"max_completion_tokens": 1}, {"max_tokens": 50,
                                                                                        "max_completion_tokens": 99}])
def test_within_the_cap_passes_unchanged(body: dict[str, Any]) -> None:
    check_max_tokens(CAP, body, "chat.completions")


@pytest.mark.parametrize(("body", "param"), [
    ({"max_tokens": 101}, "max_tokens"),
    ({"max_completion_tokens": 4096}, "max_completion_tokens"),
    ({"max_tokens": 10, "max_completion_tokens": 101}, "max_completion_tokens")])
def test_above_the_cap_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_max_tokens(CAP, body, "chat.completions")
    error = raised.value
    assert (error.status_code, error.type, error.code, error.param) == (
        400, "invalid_request_error", "max_tokens_exceeded", param)
    assert "cap of 100" in error.message


def test_no_max_tokens_under_a_cap_is_refused_too() -> None:
    with pytest.raises(InvalidRequest) as raised:
        check_max_tokens(CAP, {"messages": []}, "messages")
    assert (raised.value.code, raised.value.param) == ("max_tokens_required", "max_tokens")


def test_no_cap_no_check_and_embeddings_are_never_capped() -> None:
    check_max_tokens(None, {}, "chat.completions")
    check_max_tokens(Access(require_tags={"region": "eu"}), {"max_tokens": 10**6}, "chat.completions")
    check_max_tokens(CAP, {"input": "hi"}, "embeddings")
