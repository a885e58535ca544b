"""The issue's reliability drill, short: a target failing half its requests and a slow one, a steady
load, a breaker that must open and close again, and a config reload in the middle. No request may fail.

The same drill prints its figures with ``python bench/routing_drill.py`` (see bench/README.md)."""

from __future__ import annotations

from pathlib import Path

from bench.routing_drill import FLAKY, SLOW, run


def test_flaky_and_slow_targets_under_load_with_a_reload(tmp_path: Path) -> None:
    figures = run(rate=25.0, flaky_s=6.0, recovered_s=6.0, cooldown_s=1.5, root=tmp_path)
    failures = [f for phase in figures["phases"] for f in phase["failures"]]
    assert figures["success_rate"] == 1.0, failures
    assert figures["requests"] >= 300
    assert figures["breaker_opened"], figures["breaker_transitions"]
    assert figures["breaker_closed_after_recovery"], figures["breaker_transitions"]
    # the reload took effect: requests were served under two config versions
    assert len({r["config_version"] for r in figures["config_versions"]}) >= 2, figures["config_versions"]
    served = {r["target"]: r["n"] for r in figures["served_by"]}
    assert served.get(f"mock-openai/{FLAKY}", 0) > 0 and served.get(f"mock-openai/{SLOW}", 0) > 0
