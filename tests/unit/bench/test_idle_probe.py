"""The idle probe's config: the shipped one, pointed at the mock; ``--no-ner`` leaves no NER profile active."""

from __future__ import annotations

from bench.idle_probe import shipped_config
from infra.bootstrap import parse_config


def test_shipped_config_points_every_provider_at_the_mock() -> None:
    cfg = shipped_config(no_ner=False)
    port = cfg["mock_provider"]["port"]
    assert all(f":{port}" in p["base_url"] for p in cfg["providers"].values())
    assert sorted(parse_config(cfg).active_profiles) == ["default", "sensitive", "strict"]


def test_no_ner_leaves_only_the_default_profile_active() -> None:
    assert list(parse_config(shipped_config(no_ner=True)).active_profiles) == ["default"]
