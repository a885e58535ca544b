"""The ``governance`` section of the config, and the access rules a config-file key carries.

Tenant policy as data a person writes: what a key (``keys[].access``), a team or a tenant
(``governance.teams.<id>.access``, ``governance.tenants.<id>.access``) may reach. Each ``AccessRules``
becomes the wire contract's ``schemas.governance.Access`` (``to_access``); the config's team and tenant
entries become ``LevelPolicy`` values (``GovernanceConfig.level_policies``), the same shape the
``GW_LIMITS`` bucket holds, so every lookup goes through one ``KeyDirectory``.

Limits (budget, RPM/TPM) are written the same way: ``keys[].limits``, ``governance.teams.<id>.limits``,
``governance.tenants.<id>.limits`` (``LimitsSpec`` becomes ``schemas.governance.Limits``)::

    governance:
      default_max_output_tokens: 4096
      tenants: {acme: {limits: {budget_usd: "100", budget_period: month, rpm: 600}}}
      teams: {search: {limits: {tpm: 200000}, access: {allow_unpriced: true}}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.governance import Access, LevelPolicy, Limits, ModelLimits, usd_to_nusd


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelLimitsSpec(_Strict):
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


class LimitsSpec(_Strict):
    """``schemas.governance.Limits`` as a person writes it."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    budget_usd: str | None = None
    budget_period: Literal["day", "month", "total"] = "month"
    alert_at: float | None = Field(default=None, gt=0, le=1)
    per_model: dict[str, ModelLimitsSpec] = Field(default_factory=dict)

    @field_validator("budget_usd", mode="before")
    @classmethod
    def _amount(cls, value: object) -> object:
        if value is None:
            return None
        usd_to_nusd(value if isinstance(value, str | int | float) else str(value))  # ValueError names it
        return str(value)

    def to_limits(self) -> Limits:
        return Limits(rpm=self.rpm, tpm=self.tpm, budget_usd=self.budget_usd, budget_period=self.budget_period,
                      alert_at=self.alert_at,
                      per_model={m: ModelLimits(rpm=s.rpm, tpm=s.tpm) for m, s in self.per_model.items()})


class AccessRules(_Strict):
    """What a key, team or tenant may reach (see ``schemas.governance.Access``).

    ``require_tags``: every target the request is routed to must carry each tag with each value asked
    (a provider's ``tags``; a list-valued provider tag qualifies when it contains every value asked:
    ``compliance: [hipaa, soc2]``). ``providers``: the configured
    provider names allowed (empty: all). ``max_tokens``: a cap on the request's ``max_tokens`` /
    ``max_completion_tokens`` (a request above it, or without one, is refused). ``allow_unpriced``: a
    budgeted scope may use a model with no known price.
    """

    require_tags: dict[str, str | list[str]] = Field(default_factory=dict)
    providers: list[str] = Field(default_factory=list)
    max_tokens: int | None = Field(default=None, ge=1)
    allow_unpriced: bool = False

    def to_access(self) -> Access:
        return Access(require_tags={k: list(v) if isinstance(v, list) else v for k, v in self.require_tags.items()},
                      providers=list(self.providers),
                      max_tokens=self.max_tokens, allow_unpriced=self.allow_unpriced)


class LevelRules(_Strict):
    """The rules of one team or tenant."""

    limits: LimitsSpec = LimitsSpec()
    access: AccessRules = AccessRules()

    def policy(self, kind: Literal["team", "tenant"], level_id: str) -> LevelPolicy:
        return LevelPolicy(kind=kind, id=level_id, limits=self.limits.to_limits(), access=self.access.to_access())


class GovernanceConfig(_Strict):
    """``governance: {tenants: {<id>: {access: ...}}, teams: {<id>: {access: ...}}}``.

    A team or tenant listed here has a policy (its ``access``, defaults included); one not listed has
    none, and only its keys' own rules apply.
    """

    default_max_output_tokens: int = Field(
        default=4096, ge=1,
        description="a request's output tokens when it gives no max_tokens and its model has no known limit")
    tenants: dict[str, LevelRules] = Field(default_factory=dict)
    teams: dict[str, LevelRules] = Field(default_factory=dict)

    def level(self, kind: Literal["team", "tenant"], level_id: str) -> LevelPolicy | None:
        """The policy of a team or tenant as the wire contract holds it; ``None`` when it has none."""
        rules = (self.teams if kind == "team" else self.tenants).get(level_id) if level_id else None
        return None if rules is None else rules.policy(kind, level_id)

    def level_policies(self) -> list[LevelPolicy]:
        """Every team and tenant policy of the file (for a ``KeyDirectory``)."""
        return ([r.policy("tenant", i) for i, r in self.tenants.items()]
                + [r.policy("team", i) for i, r in self.teams.items()])

    def rules(self) -> list[tuple[str, AccessRules]]:
        """Every level's access rules with its config path (for the provider-name check)."""
        return ([(f"governance.tenants.{i}.access", r.access) for i, r in self.tenants.items()]
                + [(f"governance.teams.{i}.access", r.access) for i, r in self.teams.items()])
