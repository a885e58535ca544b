"""Which ledger scopes a request is limited by: its key's, its team's and its tenant's limits (and each
one's per-model limits for the alias it asks for), read from a ``KeyDirectory``.

The directory holds the config file's keys and team/tenant rules and the ``GW_KEYS``/``GW_LIMITS``
buckets' (``infra/key_directory.py``); ``Directory`` is what this module reads of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from schemas.governance import (
    Access,
    BudgetPeriod,
    LevelKind,
    LevelPolicy,
    Limits,
    VirtualKey,
    ledger_key,
)


class Directory(Protocol):
    """What admission reads (``schemas.governance.KeyDirectory`` meets it)."""

    def by_id(self, key_id: str) -> VirtualKey | None: ...

    def level(self, kind: Literal["team", "tenant"], level_id: str) -> LevelPolicy | None: ...


@dataclass(frozen=True, slots=True)
class Scope:
    """One limited scope of a request: its ledger entry and the limits that apply there."""

    key: str
    label: str
    """How messages and rows name it: ``key.k1``, ``team.x``, ``tenant.t``, ``key.k1.m.gpt-4o``."""
    level: str
    """The level it belongs to (``key.k1``): where its access rules come from."""
    rpm: int | None = None
    tpm: int | None = None
    budget_nusd: int | None = None
    period: BudgetPeriod | None = None
    """The budget period spend counts in; ``None`` for per-model scopes (rate limits only)."""
    alert_at: float | None = None
    allow_unpriced: bool = False


def _level_scopes(kind: LevelKind, level_id: str, limits: Limits, access: Access, model: str) -> list[Scope]:
    if limits.empty:
        return []
    label = f"{kind}.{level_id}"
    found = []
    if limits.rpm is not None or limits.tpm is not None or limits.budget_usd is not None:
        found.append(Scope(key=ledger_key(kind, level_id), label=label, level=label, rpm=limits.rpm, tpm=limits.tpm,
                           budget_nusd=limits.budget_nusd, period=limits.budget_period, alert_at=limits.alert_at,
                           allow_unpriced=access.allow_unpriced))
    per_model = limits.per_model.get(model)
    if per_model is not None and (per_model.rpm is not None or per_model.tpm is not None):
        found.append(Scope(key=ledger_key(kind, level_id, model), label=f"{label}.m.{model}", level=label,
                           rpm=per_model.rpm, tpm=per_model.tpm))
    return found


def levels_of(directory: Directory, key: VirtualKey) -> list[tuple[LevelKind, str, Limits, Access]]:
    """The key, its team (if any) and its tenant, each with its limits and access rules."""
    found: list[tuple[LevelKind, str, Limits, Access]] = [("key", key.id, key.limits, key.access)]
    team = directory.level("team", key.team) if key.team else None
    if team is not None:
        found.append(("team", team.id, team.limits, team.access))
    tenant = directory.level("tenant", key.tenant)
    if tenant is not None:
        found.append(("tenant", tenant.id, tenant.limits, tenant.access))
    return found


def scopes_for(directory: Directory, key: VirtualKey, model: str) -> list[Scope]:
    """Every scope with limits that a request of ``key`` to ``model`` counts against, key first."""
    return [s for kind, level_id, limits, access in levels_of(directory, key)
            for s in _level_scopes(kind, level_id, limits, access, model)]


def scope_of(directory: Directory, key: str) -> Scope | None:
    """A ledger key's scope as the directory has it now (settlement's alert check); ``None`` if gone."""
    kind, _, rest = key.partition(".")
    level_id, _, model = rest.partition(".m.")
    limits: Limits | None = None
    access = Access()
    if kind == "key":
        found = directory.by_id(level_id)
        limits, access = (found.limits, found.access) if found is not None else (None, access)
    elif kind in ("team", "tenant"):
        level = directory.level("team" if kind == "team" else "tenant", level_id)
        limits, access = (level.limits, level.access) if level is not None else (None, access)
    if limits is None:
        return None
    scopes = _level_scopes("key" if kind == "key" else "team" if kind == "team" else "tenant",
                           level_id, limits, access, model)
    return next((s for s in scopes if s.key == key), None)
