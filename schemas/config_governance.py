"""The ``governance`` section of the config, and the access rules a config-file key carries.

Tenant policy as data a person writes: what a key (``keys[].access``), a team or a tenant
(``governance.teams.<id>.access``, ``governance.tenants.<id>.access``) may reach. Each ``AccessRules``
becomes the wire contract's ``schemas.governance.Access`` (``to_access``); the config's team and tenant
entries become ``LevelPolicy`` values (``GovernanceConfig.level_policies``), the same shape the
``GW_LIMITS`` bucket holds, so every lookup goes through one ``KeyDirectory``.

The models here are meant to grow: limits (budgets, RPM/TPM) of a team or tenant belong on
``LevelRules`` beside ``access``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.governance import Access, LevelPolicy


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AccessRules(_Strict):
    """What a key, team or tenant may reach (see ``schemas.governance.Access``).

    ``require_tags``: every target the request is routed to must carry each tag (a provider's ``tags``;
    a list-valued provider tag qualifies when it contains the value). ``providers``: the configured
    provider names allowed (empty: all). ``max_tokens``: a cap on the request's ``max_tokens`` /
    ``max_completion_tokens`` (a request above it, or without one, is refused). ``allow_unpriced``: a
    budgeted scope may use a model with no known price.
    """

    require_tags: dict[str, str] = Field(default_factory=dict)
    providers: list[str] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, ge=1)
    allow_unpriced: bool = False

    def to_access(self) -> Access:
        return Access(require_tags=dict(self.require_tags), providers=list(self.providers),
                      max_tokens=self.max_tokens, allow_unpriced=self.allow_unpriced)


class LevelRules(_Strict):
    """The rules of one team or tenant."""

    access: AccessRules = AccessRules()


class GovernanceConfig(_Strict):
    """``governance: {tenants: {<id>: {access: ...}}, teams: {<id>: {access: ...}}}``.

    A team or tenant listed here has a policy (its ``access``, defaults included); one not listed has
    none, and only its keys' own rules apply.
    """

    tenants: dict[str, LevelRules] = Field(default_factory=dict)
    teams: dict[str, LevelRules] = Field(default_factory=dict)

    def level(self, kind: Literal["team", "tenant"], level_id: str) -> LevelPolicy | None:
        """The policy of a team or tenant as the wire contract holds it; ``None`` when it has none."""
        rules = (self.teams if kind == "team" else self.tenants).get(level_id) if level_id else None
        return None if rules is None else LevelPolicy(kind=kind, id=level_id, access=rules.access.to_access())

    def level_policies(self) -> list[LevelPolicy]:
        """Every team and tenant policy of the file (for a ``KeyDirectory``)."""
        return ([LevelPolicy(kind="tenant", id=i, access=r.access.to_access()) for i, r in self.tenants.items()]
                + [LevelPolicy(kind="team", id=i, access=r.access.to_access()) for i, r in self.teams.items()])

    def rules(self) -> list[tuple[str, AccessRules]]:
        """Every level's access rules with its config path (for the provider-name check)."""
        return ([(f"governance.tenants.{i}.access", r.access) for i, r in self.tenants.items()]
                + [(f"governance.teams.{i}.access", r.access) for i, r in self.teams.items()])
