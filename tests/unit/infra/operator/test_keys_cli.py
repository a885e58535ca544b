"""``gateway keys`` / ``gateway budgets`` flags into request models (the commands against a running
gateway: ``tests/integration/test_governance_keys.py``)."""

from __future__ import annotations

import pytest

from infra.operator.cli import build_parser, main
from infra.operator.keys_cli import InvalidInput, _budget_fields, _key_fields, _model
from schemas.governance_admin import BudgetSet, KeyCreate, KeyUpdate


def test_create_flags() -> None:
    args = build_parser().parse_args([
        "keys", "create", "--tenant", "acme", "--team", "ml", "--models", "a, b", "--rpm", "60",
        "--budget-usd", "5", "--budget-period", "day", "--expires", "30d", "--tag", "env=prod", "--tag", "x=y",
        "--require-tag", "region=eu", "--providers", "p1,p2", "--max-tokens", "512", "--allow-unpriced"])
    req = _model(KeyCreate, _key_fields(args))
    assert (req.tenant, req.team, req.models, req.rpm, req.budget_usd, req.budget_period) == \
        ("acme", "ml", ["a", "b"], 60, "5", "day")
    assert req.tags == {"env": "prod", "x": "y"} and req.require_tags == {"region": "eu"}
    assert (req.providers, req.max_tokens, req.allow_unpriced) == (["p1", "p2"], 512, True)


def test_a_tag_required_twice_asks_for_both_values() -> None:
    args = build_parser().parse_args([
        "keys", "create", "--tenant", "acme", "--require-tag", "compliance=hipaa", "--require-tag", "region=eu",
        "--require-tag", "compliance=soc2", "--require-tag", "compliance=hipaa"])
    req = _model(KeyCreate, _key_fields(args))
    assert req.require_tags == {"compliance": ["hipaa", "soc2"], "region": "eu"}


def test_update_gives_only_what_was_typed_and_clear_nulls() -> None:
    args = build_parser().parse_args(["keys", "update", "k1", "--name", "n", "--clear", "rpm",
                                      "--clear", "budget-usd", "--revision", "4"])
    req = _model(KeyUpdate, _key_fields(args))
    assert req.model_fields_set == {"name", "rpm", "budget_usd", "revision"}
    assert req.rpm is None and req.budget_usd is None and req.revision == 4


def test_invalid_flags_name_the_flag() -> None:
    args = build_parser().parse_args(["keys", "create", "--tenant", "acme", "--expires", "soon"])
    with pytest.raises(InvalidInput, match="--expires"):
        _model(KeyCreate, _key_fields(args))


def test_budget_flags() -> None:
    args = build_parser().parse_args(["budgets", "set", "--team", "ml", "--usd", "50", "--period", "month",
                                      "--tpm", "1000"])
    req = _model(BudgetSet, _budget_fields(args))
    assert (req.usd, req.period, req.tpm) == ("50", "month", 1000) and args.team == "ml"


def test_invalid_input_exits_2_and_unreachable_gateway_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--tenant", "a b", "--nats-url", "nats://127.0.0.1:1"]) == 2
    assert "--tenant" in capsys.readouterr().err
    assert main(["keys", "list", "--nats-url", "nats://127.0.0.1:1"]) == 1
    assert "is `gateway up` running?" in capsys.readouterr().err
