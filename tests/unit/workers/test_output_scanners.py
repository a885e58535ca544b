"""The output filter's scanners: one per distinct profile settings, rebuilt only where settings changed,
built from the profile's output-filter and redaction settings. The analyzer is a small regex stand-in."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra import bootstrap
from schemas.config import DEFAULT_ENTITIES, GatewayConfig, Guardrails
from stages.pii import PiiScanner
from tests.support.fake_pii import FakeAnalyzer, fake_scanner
from workers.output_scanners import OutputScanners, build_scanner, build_scanners, derive_scanners, scanner_inputs

CONFIG_DATA: dict[str, Any] = {
    "output_filter": {"blocked": [{"name": "secret", "pattern": r"TOP-SECRET-\w+", "action": "block"}]},
    "guardrail_profiles": {
        "flagging": {"output_filter": {"pii_action": "flag",
                                       "blocked": [{"name": "term", "pattern": "Project X", "action": "flag"}]}},
        "strict": {"output_filter": {"pii_action": "block"}},
        "rewrite": {"guardrails": []},
        "names": {"output_filter": {"engine": "ner", "entities": ["PERSON", "EMAIL_ADDRESS"]}, "guardrails": []},
    },
    # a profile is built only when a key or a model alias names it (GatewayConfig.active_profiles)
    "keys": [{"id": f"key-{name}", "key_sha256": f"{i:064x}", "tenant": "acme", "guardrail_profile": name}
             for i, name in enumerate(["flagging", "strict", "rewrite", "names"])],
}
CONFIG = GatewayConfig.model_validate(CONFIG_DATA)


async def test_scanners_share_equal_settings_and_a_reload_rebuilds_only_changes() -> None:
    built: list[str] = []

    def build(profile: Guardrails) -> OutputScanners:
        built.append(profile.profile)
        return fake_scanner(profile)

    derived = derive_scanners(build)
    scanners = derived.get("v1", CONFIG)
    # default, flagging, strict and rewrite share the top-level redaction and entity settings
    assert scanners["default"] is scanners["rewrite"] is scanners["flagging"] is scanners["strict"]
    assert scanners["names"] is not scanners["default"] and sorted(built) == ["default", "names"]
    built.clear()
    same = copy.deepcopy(CONFIG_DATA)
    same["limits"] = {"max_body_bytes": 4096}
    await derived.update(GatewayConfig.model_validate(same), "v2")
    assert built == [] and derived.current.version == "v2" and derived.current.value is scanners  # no rebuild
    data = copy.deepcopy(CONFIG_DATA)
    data["guardrail_profiles"]["names"]["redaction"] = {"allow_list": ["Ada Lovelace"]}
    changed = GatewayConfig.model_validate(data)
    assert scanner_inputs(changed) != scanner_inputs(CONFIG)
    await derived.update(changed, "v3")
    again = derived.current.value
    assert built == ["names"] and again["default"] is scanners["default"] and again["names"] is not scanners["names"]


def test_scanners_are_built_only_for_profiles_a_key_or_model_names() -> None:
    built: list[str] = []

    def build(profile: Guardrails) -> OutputScanners:
        built.append(profile.profile)
        return fake_scanner(profile)

    data = copy.deepcopy(CONFIG_DATA)
    data["keys"] = [k for k in data["keys"] if k["guardrail_profile"] != "names"]
    scanners = build_scanners(GatewayConfig.model_validate(data), build=build)
    assert "names" not in scanners and built == ["default"]  # the NER profile nobody uses is never built


def test_build_scanner_uses_the_profile_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def pii_scanner(entities: list[str], score_threshold: float, custom: Any, **kw: Any) -> PiiScanner:
        calls.append({"entities": list(entities), "threshold": score_threshold,
                      "custom": [c.entity for c in custom], **kw})
        return PiiScanner(FakeAnalyzer(), [e for e in entities if e in ("EMAIL_ADDRESS", "PERSON")], 0.4)

    monkeypatch.setattr(bootstrap, "pii_scanner", pii_scanner)
    config = GatewayConfig.model_validate({
        "redaction": {"score_threshold": 0.6, "allow_list": ["a@b.example"], "allow_patterns": [r"x+"],
                      "custom": [{"entity": "TICKET", "pattern": r"T-\d+"}]},
        "guardrail_profiles": {"ner": {"output_filter": {"engine": "ner"}},
                               "ner_patterns_only": {"output_filter": {"engine": "ner", "entities": ["IBAN_CODE"]}}},
    })
    plain = build_scanner(config.profile("default"))
    assert plain.fast is None and calls == [{
        "entities": DEFAULT_ENTITIES, "threshold": 0.6, "custom": ["TICKET"], "engine": "pattern",
        "allow_list": ["a@b.example"], "allow_patterns": ["x+"]}]
    calls.clear()
    ner = build_scanner(config.profile("ner"))
    assert ner.fast is not None
    assert [(c["engine"], c["entities"]) for c in calls] == [
        ("ner", [*DEFAULT_ENTITIES, "PERSON", "LOCATION"]), ("pattern", DEFAULT_ENTITIES)]
    calls.clear()
    assert build_scanner(config.profile("ner_patterns_only")).fast is None  # nothing needs spaCy
    assert [(c["engine"], c["entities"]) for c in calls] == [("pattern", ["IBAN_CODE"])]
