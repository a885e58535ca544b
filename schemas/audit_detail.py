"""What each audited change records (``AuditEntry``): who, what, and a before/after summary that never
holds a secret or a key hash. Pure builders, one per kind of change."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from schemas.audit import AuditEntry
from schemas.events import RequestCompleted
from schemas.governance import LevelPolicy, VirtualKey
from schemas.ids import uuid7
from schemas.wire import JSONObject, JSONValue

KeyAction = Literal["created", "updated", "revoked", "rotated"]
GUARDRAIL_SECTIONS = ("redaction", "output_filter", "guardrails")
"""The config sections that make up the ``default`` guardrail profile."""
_NAMED_SECTIONS = ("providers", "models", "guardrail_profiles", "keys")


def _json(value: Any) -> JSONValue:
    out: JSONValue = msgspec.to_builtins(value)
    return out


def key_summary(key: VirtualKey) -> JSONObject:
    """A key as the audit shows it: every field but its secrets, which are reduced to their validity."""
    out: JSONObject = {name: _json(getattr(key, name)) for name in key.__struct_fields__ if name != "secrets"}
    out["secrets"] = [{"created_at": s.created_at, "valid_until": s.valid_until} for s in key.secrets]
    return out


def changes(before: Mapping[str, JSONValue], after: Mapping[str, JSONValue]) -> JSONObject:
    """``{field: {"before": b, "after": a}}`` for every field that differs (absent reads ``None``)."""
    out: JSONObject = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            out[name] = {"before": old, "after": new}
    return out


def key_entry(action: KeyAction, before: VirtualKey | None, after: VirtualKey, actor: str,
              **extra: JSONValue) -> AuditEntry:
    """A key created (its whole summary), or updated/revoked/rotated (only what changed)."""
    new = key_summary(after)
    if before is None:
        detail: JSONObject = {"after": new}
    else:
        diff = changes(key_summary(before), new)
        diff.pop("updated_at", None)
        detail = {"changes": diff}
    detail.update(extra)
    return AuditEntry(entry_id=uuid7(), ts=after.updated_at or time.time(), kind="key", actor=actor,
                      subject=f"key.{after.id}", action=action, detail=detail)


def level_entry(before: LevelPolicy | None, after: LevelPolicy, actor: str, **extra: JSONValue) -> AuditEntry:
    """A team's or tenant's limits and access rules set."""
    old: JSONObject = {} if before is None else {"limits": _json(before.limits), "access": _json(before.access)}
    new: JSONObject = {"limits": _json(after.limits), "access": _json(after.access)}
    return AuditEntry(entry_id=uuid7(), ts=after.updated_at or time.time(), kind="budget", actor=actor,
                      subject=f"{after.kind}.{after.id}", action="set",
                      detail={"created": before is None, "changes": changes(old, new), **extra})


def _names(section: JSONValue) -> dict[str, JSONValue]:
    """A named section as name -> value: a mapping as is, a list of objects by their ``id``."""
    if isinstance(section, dict):
        return dict(section)
    if isinstance(section, list):
        return {str(item.get("id")): item for item in section if isinstance(item, dict)}
    return {}


def _sorted(names: Iterable[str]) -> list[JSONValue]:
    out: list[JSONValue] = []
    out.extend(sorted(names))
    return out


def _named_diff(before: JSONValue, after: JSONValue) -> JSONObject:
    old, new = _names(before), _names(after)
    return {
        "added": _sorted(set(new) - set(old)),
        "removed": _sorted(set(old) - set(new)),
        "changed": _sorted(name for name in set(old) & set(new) if old[name] != new[name]),
    }


def config_changes(before: Mapping[str, JSONValue] | None, after: Mapping[str, JSONValue]) -> JSONObject:
    """What a config change touched, by name only (values may hold secret references or key hashes):
    the top-level sections changed; the providers, models, guardrail profiles and config keys added,
    removed or changed; the ``default`` guardrail profile counts as changed when one of its sections did."""
    old: Mapping[str, JSONValue] = before or {}
    sections = [name for name in set(old) | set(after) if old.get(name) != after.get(name)]
    out: JSONObject = {"sections_changed": _sorted(sections)}
    for name in _NAMED_SECTIONS:
        diff = _named_diff(old.get(name), after.get(name))
        if any(diff.values()):
            out[name] = diff
    if any(old.get(s) != after.get(s) for s in GUARDRAIL_SECTIONS):
        profiles = out.setdefault("guardrail_profiles", {"added": [], "removed": [], "changed": []})
        assert isinstance(profiles, dict)
        changed = profiles["changed"]
        assert isinstance(changed, list)
        changed.append("default")
        changed.sort(key=str)
    return out


def config_entry(version: str, previous: str, actor: str, ts: float, summary: JSONObject,
                 **extra: JSONValue) -> AuditEntry:
    """A config version applied; ``summary`` from ``config_changes``."""
    detail: JSONObject = {"from_version": previous, "to_version": version, **summary, **extra}
    return AuditEntry(entry_id=uuid7(), ts=ts, kind="config", actor=actor, subject=version, action="applied",
                      detail=detail)


def block_entry(rc: RequestCompleted, actor: str) -> AuditEntry | None:
    """The audit entry of a request a guardrail blocked, else None, claimed by ``actor`` (the recording
    sink's ``nats:<identity>``). Its id derives from the request, so a redelivered record is audited once."""
    blocking = [v for v in rc.verdicts if v.outcome == "block"]
    if not blocking:
        return None
    detail: JSONObject = {
        "tenant": rc.tenant, "api_key_id": rc.api_key_id, "model": rc.model_requested,
        "profile": rc.guardrail_profile, "status_code": rc.status_code, "error_code": rc.error_code,
        "guardrails": [{"guardrail": v.guardrail, "kind": v.kind, "phase": v.phase,
                        "findings": dict(v.findings)} for v in blocking],
    }
    return AuditEntry(entry_id=f"block:{rc.request_id}", ts=rc.finished_at, kind="guardrail_block",
                      actor=actor, subject=rc.request_id, action="blocked", detail=detail)
