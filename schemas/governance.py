"""Governance as data: virtual keys, the limits of a key, team or tenant, and the shared ledger state.

Three JetStream key-value buckets hold it (names in ``schemas/subjects.py``), shared by every replica:

- ``GW_KEYS``: one ``VirtualKey`` per entry, KV key ``key.<id>``. Only hashes of secrets are stored
  (``KeySecret.sha256``); the secret itself is printed once, when it is created or rotated.
- ``GW_LIMITS``: one ``LevelPolicy`` per team or tenant, KV key ``team.<id>`` / ``tenant.<id>``.
- ``GW_LEDGER``: one ``LedgerState`` per limited scope (``ledger_key``), changed only by
  compare-and-set: spend in the current budget period, the holds of requests in flight, and per-second
  request and token counts of the last minute (RPM/TPM over a sliding 60 s window).

Money is integer nano-dollars (``nusd``, 1e-9 USD) in the ledger: per-token prices are fractions of a
micro-dollar, and integer sums are exact under any order of updates. Limits a person writes are USD
strings (``"12.50"``), read with ``usd_to_nusd``.

Every value here is a ``wire.Message``: KV entries are written with ``wire.encode`` and read with
``wire.decode``; what a person types (CLI flags, admin API bodies) is validated into these first.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Literal

import msgspec

from schemas.wire import Message

SCHEMA_VERSION = 1

BudgetPeriod = Literal["day", "month", "total"]
LevelKind = Literal["key", "team", "tenant"]

KV_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What an id of a key, team or tenant may be: it is part of a KV key (``key.<id>``) and a subject."""

KEY_PREFIX = "sk-gw-"
"""Secrets the gateway issues start with this (``sk-gw-`` + 43 url-safe characters)."""

NUSD_PER_USD = 1_000_000_000


def usd_to_nusd(usd: str | Decimal | int | float) -> int:
    """USD as integer nano-dollars (rounded half up); ``ValueError`` for what is not a non-negative amount."""
    try:
        value = Decimal(str(usd))
    except InvalidOperation:
        raise ValueError(f"not an amount in USD: {usd!r}") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"not a non-negative amount in USD: {usd!r}")
    return int((value * NUSD_PER_USD).to_integral_value(rounding="ROUND_HALF_UP"))


def nusd_to_usd(nusd: int) -> str:
    """Nano-dollars as a USD string with nine decimals, trailing zeros dropped (``"0.0042"``)."""
    text = f"{Decimal(nusd) / NUSD_PER_USD:.9f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


class ModelLimits(Message, frozen=True, kw_only=True):
    """RPM/TPM for one model alias within a scope."""

    rpm: int | None = None
    tpm: int | None = None


class Limits(Message, frozen=True, kw_only=True):
    """What a key, team or tenant may spend and how fast. ``None``: no limit at this level."""

    rpm: int | None = None
    tpm: int | None = None
    budget_usd: str | None = None
    budget_period: BudgetPeriod = "month"
    alert_at: float | None = None
    """A soft threshold, a fraction of the budget (``0.8``): crossing it records one ``gateway_events``
    row per period."""
    per_model: dict[str, ModelLimits] = {}

    @property
    def budget_nusd(self) -> int | None:
        return usd_to_nusd(self.budget_usd) if self.budget_usd is not None else None

    @property
    def empty(self) -> bool:
        return (self.rpm is None and self.tpm is None and self.budget_usd is None
                and not self.per_model)


class Access(Message, frozen=True, kw_only=True):
    """What a key, team or tenant may reach, beyond limits (tenant policy).

    ``require_tags``: every target a request routes to must carry each tag with each value asked (a
    provider's ``tags``; a list-valued provider tag qualifies when it contains every value asked), e.g.
    ``{"region": "eu", "compliance": ["hipaa", "soc2"]}``.
    ``providers``: the configured provider names allowed (empty: all). ``max_tokens``: a cap on the
    request's ``max_tokens`` (a larger one is refused). ``allow_unpriced``: a budgeted scope may use a
    model with no known price (its spend then is not counted, and the row says so).
    """

    require_tags: dict[str, str | list[str]] = {}
    providers: list[str] = []
    max_tokens: int | None = None
    allow_unpriced: bool = False


class KeySecret(Message, frozen=True, kw_only=True):
    """One secret of a key, by hash. A rotated-out secret keeps working until ``valid_until``."""

    sha256: str
    created_at: float
    valid_until: float | None = None


class KeyCache(Message, frozen=True, kw_only=True):
    """A key's response-cache settings (``schemas/config_cache.py`` CacheSettings): they win over the
    model alias's and the config's."""

    mode: str = "off"
    ttl_s: int = 3600
    max_entry_bytes: int = 256 * 1024
    similarity: float = 0.8


class VirtualKey(Message, frozen=True, kw_only=True):
    """A gateway key with a lifecycle (``GW_KEYS`` entry ``key.<id>``)."""

    schema_version: int = SCHEMA_VERSION
    id: str
    tenant: str
    team: str = ""
    user: str = ""
    name: str = ""
    models: list[str] = msgspec.field(default_factory=lambda: ["*"])
    max_input_chars: int = 200_000
    guardrail_profile: str | None = None
    tags: dict[str, str] = {}
    secrets: list[KeySecret] = []
    limits: Limits = Limits()
    access: Access = Access()
    created_at: float = 0.0
    updated_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    source: Literal["kv", "config"] = "kv"
    cache: KeyCache | None = None

    def allows(self, model: str) -> bool:
        return "*" in self.models or model in self.models


class LevelPolicy(Message, frozen=True, kw_only=True):
    """The limits and access rules of a team or a tenant (``GW_LIMITS`` entry ``<kind>.<id>``)."""

    schema_version: int = SCHEMA_VERSION
    kind: Literal["team", "tenant"]
    id: str
    limits: Limits = Limits()
    access: Access = Access()
    updated_at: float = 0.0


class Hold(Message, frozen=True, kw_only=True):
    """A request's reservation on a scope: its maximum cost and its estimated tokens, until settled."""

    nusd: int = 0
    tokens: int = 0
    expires_at: float
    at: float = 0.0
    """When it was taken (its request and tokens count in the window's bucket of that second)."""


class LedgerState(Message, frozen=True, kw_only=True):
    """One scope's shared counters (``GW_LEDGER`` entry ``ledger_key(...)``), changed by compare-and-set.

    ``period``: the budget period ``spent_nusd`` counts (``"2026-12-04"``, ``"2026-12"``, ``"total"``);
    a new period starts from zero. ``holds``: request id → its reservation; settling a request removes
    its hold and adds its actual cost, so a settlement applied twice counts once, and a hold whose
    request never settled lapses at ``expires_at``. ``requests`` / ``tokens``: epoch second → count,
    the last 60 s only (the sliding window behind RPM/TPM).
    """

    schema_version: int = SCHEMA_VERSION
    period: str = ""
    spent_nusd: int = 0
    holds: dict[str, Hold] = {}
    alerted: str = ""
    """The period whose soft-threshold alert was recorded (one per period)."""
    requests: dict[int, int] = {}
    tokens: dict[int, int] = {}

    def spent_in(self, period: str) -> int:
        """Settled spend in ``period`` (0 when the state counts an earlier one)."""
        return self.spent_nusd if self.period == period else 0

    def held(self, now: float) -> tuple[int, int]:
        """Nano-dollars and tokens held by requests in flight (lapsed holds excluded)."""
        live = [h for h in self.holds.values() if h.expires_at > now]
        return sum(h.nusd for h in live), sum(h.tokens for h in live)

    def in_window(self, now: float) -> tuple[int, int]:
        """Requests and tokens counted in the last ``WINDOW_S`` seconds."""
        first = int(now) - WINDOW_S + 1
        return (sum(n for s, n in self.requests.items() if s >= first),
                sum(n for s, n in self.tokens.items() if s >= first))


WINDOW_S = 60
"""RPM and TPM count the last 60 s (per-second buckets)."""


def period_id(period: BudgetPeriod, now: float) -> str:
    """The budget period ``now`` falls in (UTC): ``"2026-12-04"``, ``"2026-12"`` or ``"total"``."""
    if period == "total":
        return "total"
    return _period_of_day(period, int(now // 86_400))


@functools.lru_cache(maxsize=64)
def _period_of_day(period: BudgetPeriod, day: int) -> str:
    """``period_id`` for the UTC day ``day`` (days since the epoch: UTC days are whole multiples of
    86,400 s), kept: every ledger decision asks, and formatting a date costs more than the decision."""
    date = datetime.fromtimestamp(day * 86_400, tz=UTC)
    return date.strftime("%Y-%m-%d") if period == "day" else date.strftime("%Y-%m")


def period_reset(period: BudgetPeriod, now: float) -> float | None:
    """When the period ``now`` falls in ends (epoch seconds, UTC); ``None`` for ``total``."""
    if period == "total":
        return None
    day = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return (day + timedelta(days=1)).timestamp()
    first = day.replace(day=1)
    return (first.replace(year=first.year + 1, month=1) if first.month == 12
            else first.replace(month=first.month + 1)).timestamp()


def ledger_key(kind: LevelKind, scope_id: str, model: str | None = None) -> str:
    """The ``GW_LEDGER`` key of a scope (``key.k1``), or of one model alias within it (``key.k1.m.gpt-4o``)."""
    base = f"{kind}.{scope_id}"
    return f"{base}.m.{model}" if model is not None else base


class RateLimitStatus(Message, frozen=True, kw_only=True):
    """The tightest request and token limits a request met, for OpenAI's ``x-ratelimit-*`` headers."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


class Admission(Message, frozen=True, kw_only=True):
    """What the policy stage admitted a request with (on the envelope until the request is settled).

    ``scopes``: the ledger keys that hold this request's reservation (``hold_nusd`` and ``hold_tokens``
    on each); settled from the request's record once it ends. ``unpriced``: a budgeted scope let an
    unpriced model through (``Access.allow_unpriced``); its spend is not counted.
    """

    scopes: list[str] = []
    hold_nusd: int = 0
    hold_tokens: int = 0
    expires_at: float = 0.0
    unpriced: bool = False
    ratelimit: RateLimitStatus | None = None
    refused: str = ""
    """The limit that refused the request (``"key.k1 budget"``, ``"team.x rpm"``); ``""`` when admitted."""


class KeyDirectory:
    """Every key by secret hash (the config file's and the ``GW_KEYS`` bucket's) and every team and
    tenant policy: what ingress, redaction, policy and routing look keys up in. Built per change of
    either source; a lookup is a dict access.

    ``lookup(hash, now)`` is the key a request authenticates as, or why not (``KeyRefusal``): unknown,
    revoked, expired, or a rotated-out secret past its grace. A KV key wins over a config key with the
    same hash (it can be revoked; the file's cannot, short of editing the file).
    """

    def __init__(self, config_keys: Iterable[VirtualKey] = (), kv_keys: Iterable[VirtualKey] = (),
                 levels: Iterable[LevelPolicy] = ()) -> None:
        by_hash: dict[str, tuple[VirtualKey, KeySecret]] = {}
        by_id: dict[str, VirtualKey] = {}
        for key in [*config_keys, *kv_keys]:
            by_id[key.id] = key
            for secret in key.secrets:
                by_hash[secret.sha256] = (key, secret)
        self._by_hash = by_hash
        self._by_id = by_id
        self._levels = {(level.kind, level.id): level for level in levels}

    def lookup(self, key_hash: str | None, now: float) -> VirtualKey | KeyRefusal:
        if not key_hash:
            return "missing"
        found = self._by_hash.get(key_hash)
        if found is None:
            return "unknown"
        key, secret = found
        if key.revoked_at is not None and key.revoked_at <= now:
            return "revoked"
        if key.expires_at is not None and key.expires_at <= now:
            return "expired"
        if secret.valid_until is not None and secret.valid_until <= now:
            return "rotated"
        return key

    def by_id(self, key_id: str) -> VirtualKey | None:
        return self._by_id.get(key_id)

    def keys(self) -> list[VirtualKey]:
        return list(self._by_id.values())

    def level(self, kind: Literal["team", "tenant"], level_id: str) -> LevelPolicy | None:
        return self._levels.get((kind, level_id)) if level_id else None

    def __len__(self) -> int:
        return len(self._by_id)


KeyRefusal = Literal["missing", "unknown", "revoked", "expired", "rotated"]
"""Why a key does not authenticate (each its own error ``code``: ``missing_api_key``,
``invalid_api_key``, ``key_revoked``, ``key_expired``, ``key_rotated``)."""
