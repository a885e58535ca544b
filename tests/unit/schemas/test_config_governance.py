"""The governance section and a config key's limits, as a person writes them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.config import GatewayConfig
from schemas.config_governance import LimitsSpec
from schemas.governance import Limits, ModelLimits


def test_limits_become_the_ledgers_limits() -> None:
    spec = LimitsSpec.model_validate({"budget_usd": 12.5, "budget_period": "day", "rpm": 5,
                                      "per_model": {"m": {"tpm": 10}}, "alert_at": 0.8})
    assert spec.to_limits() == Limits(budget_usd="12.5", budget_period="day", rpm=5, alert_at=0.8,
                                      per_model={"m": ModelLimits(tpm=10)})
    assert spec.to_limits().budget_nusd == 12_500_000_000


@pytest.mark.parametrize("bad", [{"budget_usd": "-1"}, {"budget_usd": "ten"}, {"rpm": 0}, {"alert_at": 1.5},
                                 {"budget_period": "week"}, {"burst": 3}])
def test_bad_limits_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        LimitsSpec.model_validate(bad)


def test_levels_of_the_governance_section() -> None:
    config = GatewayConfig.model_validate({"governance": {
        "default_max_output_tokens": 1000,
        "tenants": {"acme": {"limits": {"rpm": 10}}}, "teams": {"x": {"access": {"allow_unpriced": True}}}}})
    levels = {(lv.kind, lv.id): lv for lv in config.governance.level_policies()}
    assert levels[("tenant", "acme")].limits.rpm == 10
    assert levels[("team", "x")].access.allow_unpriced and levels[("team", "x")].limits.empty
    assert config.governance.default_max_output_tokens == 1000
