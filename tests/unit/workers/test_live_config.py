"""``Derived``: a value derived from the live config, rebuilt only when its inputs change."""

from __future__ import annotations

import pytest

from schemas.config import GatewayConfig
from workers.live_config import Derived


async def test_derived_rebuilds_only_when_its_inputs_change() -> None:
    builds: list[float] = []

    def build(config: GatewayConfig) -> str:
        builds.append(config.redaction.score_threshold)
        if config.redaction.score_threshold > 0.9:
            raise ValueError("cannot build that")
        return f"scanner@{config.redaction.score_threshold}"

    base = GatewayConfig()
    derived = Derived(base, lambda c: c.redaction.score_threshold, build)
    assert derived.current == (base, "scanner@0.4") and builds == [0.4]

    other_limits = GatewayConfig.model_validate({"limits": {"max_body_bytes": 4096}})
    await derived.update(other_limits, "v2")
    assert derived.current == (other_limits, "scanner@0.4") and builds == [0.4]  # config swapped, no rebuild

    stricter = GatewayConfig.model_validate({"redaction": {"score_threshold": 0.7}})
    await derived.update(stricter, "v3")
    assert derived.current == (stricter, "scanner@0.7") and builds == [0.4, 0.7]

    broken = GatewayConfig.model_validate({"redaction": {"score_threshold": 0.95}})
    with pytest.raises(ValueError, match="cannot build"):
        await derived.update(broken, "v4")
    assert derived.current == (stricter, "scanner@0.7")  # the old pair stays
