"""What audit entries say: key and budget changes without secrets, config changes by name, blocks."""

from __future__ import annotations

import json

from schemas.audit import canonical_json
from schemas.audit_detail import block_entry, changes, config_changes, config_entry, key_entry, level_entry
from schemas.events import RequestCompleted
from schemas.governance import KeySecret, LevelPolicy, Limits, VirtualKey
from schemas.guardrails import Verdict
from schemas.wire import replace

HASH = "a" * 64


def key(**changes: object) -> VirtualKey:
    base = VirtualKey(id="k1", tenant="acme", team="search", secrets=[KeySecret(sha256=HASH, created_at=10.0)],
                      created_at=10.0, updated_at=10.0)
    return replace(base, **changes)


def test_a_created_key_is_summarised_without_its_secret_hash() -> None:
    entry = key_entry("created", None, key(), "cli:ana@box")
    text = canonical_json(entry.detail)
    assert HASH not in text and "sha256" not in text
    assert entry.kind == "key" and entry.subject == "key.k1" and entry.action == "created"
    after = entry.detail["after"]
    assert isinstance(after, dict) and after["tenant"] == "acme"
    assert after["secrets"] == [{"created_at": 10.0, "valid_until": None}]


def test_an_update_records_only_what_changed_before_and_after() -> None:
    before = key()
    after = replace(before, team="ads", limits=Limits(rpm=60), updated_at=20.0)
    entry = key_entry("updated", before, after, "admin-api")
    diff = entry.detail["changes"]
    assert isinstance(diff, dict) and sorted(diff) == ["limits", "team"]
    assert diff["team"] == {"before": "search", "after": "ads"}
    assert entry.actor == "admin-api" and entry.ts == 20.0


def test_a_rotation_shows_the_secrets_validity_and_the_grace_but_no_hash() -> None:
    before = key()
    after = replace(before, secrets=[KeySecret(sha256=HASH, created_at=10.0, valid_until=80.0),
                                     KeySecret(sha256="b" * 64, created_at=20.0)], updated_at=20.0)
    entry = key_entry("rotated", before, after, "cli:ana@box", grace_s=60.0)
    text = canonical_json(entry.detail)
    assert HASH not in text and "b" * 64 not in text
    assert entry.detail["grace_s"] == 60.0 and "secrets" in json.loads(text)["changes"]


def test_a_budget_set_records_the_level_and_its_changes() -> None:
    before = LevelPolicy(kind="team", id="search", limits=Limits(rpm=10), updated_at=1.0)
    after = replace(before, limits=Limits(rpm=20), updated_at=2.0)
    entry = level_entry(before, after, "cli:ana@box")
    assert entry.kind == "budget" and entry.subject == "team.search" and entry.action == "set"
    assert entry.detail["created"] is False and list(json.loads(canonical_json(entry.detail))["changes"]) == ["limits"]
    assert level_entry(None, after, "x").detail["created"] is True


def test_changes_reads_absent_fields_as_none() -> None:
    assert changes({"a": 1}, {"b": 2}) == {"a": {"before": 1, "after": None}, "b": {"before": None, "after": 2}}


def test_config_changes_name_sections_profiles_and_keys_never_their_values() -> None:
    before = {"providers": {"p": {"type": "openai", "api_key": "env:A"}}, "keys": [{"id": "k1", "key_sha256": HASH}],
              "guardrail_profiles": {"strict": {"guardrails": []}, "old": {}}, "redaction": {"enabled": True}}
    after = {"providers": {"p": {"type": "openai", "api_key": "env:B"}, "q": {"type": "vllm"}},
             "keys": [{"id": "k2", "key_sha256": "c" * 64}],
             "guardrail_profiles": {"strict": {"guardrails": [{"use": "secrets"}]}, "new": {}},
             "redaction": {"enabled": False}}
    summary = config_changes(before, after)
    assert summary["sections_changed"] == ["guardrail_profiles", "keys", "providers", "redaction"]
    assert summary["providers"] == {"added": ["q"], "removed": [], "changed": ["p"]}
    assert summary["keys"] == {"added": ["k2"], "removed": ["k1"], "changed": []}
    assert summary["guardrail_profiles"] == {"added": ["new"], "removed": ["old"], "changed": ["default", "strict"]}
    text = canonical_json(summary)
    assert HASH not in text and "env:" not in text
    entry = config_entry("v2", "v1", "apply:ana@box", 5.0, summary, file="/etc/gw.yaml")
    assert entry.subject == "v2" and entry.detail["from_version"] == "v1" and entry.detail["file"] == "/etc/gw.yaml"


def test_a_first_config_has_everything_added() -> None:
    summary = config_changes(None, {"models": {"m": {}}})
    assert summary == {"sections_changed": ["models"], "models": {"added": ["m"], "removed": [], "changed": []}}


def completed(*verdicts: Verdict) -> RequestCompleted:
    return RequestCompleted(event_id="e", request_id="r-1", ts=1.0, finished_at=2.0, stage="policy", status_code=400,
                            tenant="acme", api_key_id="k1", error_code="guardrail_blocked", verdicts=list(verdicts))


def test_a_guardrail_block_is_one_entry_keyed_by_its_request() -> None:
    blocked = completed(Verdict(guardrail="pi", kind="prompt_injection", phase="input", outcome="block",
                                findings={"role_override": 2}),
                        Verdict(guardrail="secrets", kind="secrets", phase="input", outcome="flag"))
    entry = block_entry(blocked, "nats:sink")
    assert entry is not None and entry.entry_id == "block:r-1" and entry.kind == "guardrail_block"
    assert entry.actor == "nats:sink"
    assert entry.detail["guardrails"] == [{"guardrail": "pi", "kind": "prompt_injection", "phase": "input",
                                           "findings": {"role_override": 2}}]
    assert block_entry(completed(Verdict(guardrail="s", kind="secrets", phase="input", outcome="flag")),
                       "nats:sink") is None
