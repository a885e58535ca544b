"""What an operator writes to manage keys and budgets (the admin API's bodies, the CLI's flags), as
pydantic models: their errors name the offending field, and their JSON schemas make the admin API's
OpenAPI document. ``infra/governance_admin.py`` turns them into ``schemas.governance`` values.

Durations are ``<n><unit>`` with unit ``s``, ``m``, ``h``, ``d`` or ``w`` (``30d``, ``12h``, ``10m``);
an expiry is a duration from now or an ISO date or date-time (UTC when no zone is given), or ``never``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.config_cache import CacheSettings
from schemas.governance import KV_NAME, BudgetPeriod, usd_to_nusd

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_duration(text: str) -> float:
    """``"10m"`` → 600.0 seconds; ``ValueError`` naming the expected form otherwise. ``"0"`` is 0."""
    if text.strip() == "0":
        return 0.0
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r}; write a number and a unit, e.g. 30d, 12h, 10m, 45s")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_expiry(text: str, now: float) -> float | None:
    """When a key expires (epoch seconds): ``"30d"`` from ``now``, an ISO date (``2027-01-31``: its
    start, UTC) or date-time; ``"never"`` → ``None``. ``ValueError`` for anything else."""
    if text.strip().lower() == "never":
        return None
    if _DURATION.match(text):
        return now + parse_duration(text)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an expiry: {text!r}; write a duration (30d, 12h), an ISO date (2027-01-31) "
                         "or date-time, or 'never'") from None
    return (when if when.tzinfo is not None else when.replace(tzinfo=UTC)).timestamp()


def _check_id(value: str) -> str:
    if not KV_NAME.match(value):
        raise ValueError(f"{value!r} is not an id: 1-64 letters, digits, '_' or '-'")
    return value


def _check_optional_id(value: str) -> str:
    return _check_id(value) if value else value


def _check_usd(value: str | None) -> str | None:
    if value is not None:
        usd_to_nusd(value)
    return value


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_expiry(value: str | None) -> str | None:
    if value is not None:
        parse_expiry(value, 0.0)
    return value


Id = Annotated[str, AfterValidator(_check_id)]
OptionalId = Annotated[str, AfterValidator(_check_optional_id)]
Usd = Annotated[str | None, AfterValidator(_check_usd)]
Expiry = Annotated[str | None, AfterValidator(_check_expiry)]
AlertAt = Annotated[float | None, Field(gt=0, le=1)]
PositiveInt = Annotated[int | None, Field(ge=1)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AccessFields(_Body):
    """The access rules of a key, team or tenant (``schemas.governance.Access``)."""

    require_tags: dict[str, str | list[str]] | None = Field(
        default=None, description="tags every provider a request routes to must carry, each with every value "
                                  "asked, e.g. {\"region\": \"eu\", \"compliance\": [\"hipaa\", \"soc2\"]}")
    providers: list[str] | None = Field(default=None, description="the provider names allowed (empty: all)")
    max_tokens: PositiveInt = Field(default=None, description="a cap on a request's max_tokens")
    allow_unpriced: bool | None = Field(default=None, description="a budgeted scope may use an unpriced model")


class LimitFields(_Body):
    """Limits of a key (``schemas.governance.Limits``); ``null``: no limit at this level."""

    rpm: PositiveInt = Field(default=None, description="requests per minute")
    tpm: PositiveInt = Field(default=None, description="tokens per minute")
    budget_usd: Usd = Field(default=None, description="spend allowed per budget period, USD as a string (\"12.50\")")
    budget_period: BudgetPeriod | None = Field(default=None, description="day, month (UTC) or total")
    alert_at: AlertAt = Field(default=None, description="a soft threshold, a fraction of the budget (0.8)")


class KeyCreate(LimitFields, AccessFields):
    """``POST /admin/v1/keys``, ``gateway keys create``."""

    id: Id | None = Field(default=None, description="the key's id (default: key_ + random)")
    tenant: Id
    team: OptionalId = ""
    user: str = Field(default="", max_length=256)
    name: str = Field(default="", max_length=256)
    models: list[str] = Field(default_factory=lambda: ["*"], min_length=1,
                              description="model aliases the key may use; [\"*\"]: every alias")
    max_input_chars: int = Field(default=200_000, ge=1)
    expires: Expiry = Field(default=None, description="a duration from now (30d, 12h), an ISO date, or never")
    guardrail_profile: str | None = Field(default=None, description="a profile of the live config")
    tags: dict[str, str] = Field(default_factory=dict, description="tags of the key, recorded on its requests")
    cache: CacheSettings | None = Field(default=None, description="the response cache for the key's requests "
                                                                  "(wins over the alias's and the config's)")


class KeyUpdate(LimitFields, AccessFields):
    """``PATCH /admin/v1/keys/{id}``, ``gateway keys update``: the fields given change; ``null`` clears a
    limit. ``revision``: the KV revision read before (optimistic concurrency; 409 if it moved since)."""

    tenant: Id | None = None
    team: OptionalId | None = None
    user: str | None = Field(default=None, max_length=256)
    name: str | None = Field(default=None, max_length=256)
    models: list[str] | None = Field(default=None, min_length=1)
    max_input_chars: int | None = Field(default=None, ge=1)
    expires: Expiry = None
    guardrail_profile: str | None = None
    tags: dict[str, str] | None = None
    cache: CacheSettings | None = Field(default=None, description="null: the alias's or the config's apply")
    revision: int | None = Field(default=None, ge=1)


class KeyRotate(_Body):
    """``POST /admin/v1/keys/{id}/rotate``, ``gateway keys rotate``."""

    grace: Annotated[str, AfterValidator(_check_duration)] = Field(
        default="0", description="how long the old secret keeps working (10m); 0: not at all")


class BudgetSet(AccessFields):
    """``PUT /admin/v1/budgets/{tenant|team}/{id}``, ``gateway budgets set``: the fields given change."""

    usd: Usd = Field(default=None, description="spend allowed per period, USD as a string; null: no budget")
    period: BudgetPeriod | None = Field(default=None, description="day, month (UTC) or total")
    rpm: PositiveInt = None
    tpm: PositiveInt = None
    alert_at: AlertAt = None


LevelName = Literal["team", "tenant"]
