"""Managing virtual keys and team/tenant limits: pure JetStream KV operations, shared by the admin HTTP
API (``ingress/admin_api.py``) and the CLI (``gateway keys``, ``gateway budgets``).

- Keys live in ``GW_KEYS`` (``key.<id>``), team and tenant policies in ``GW_LIMITS`` (``<kind>.<id>``);
  every change is a compare-and-set on the entry's revision (``update(..., last=revision)``), so two
  admins never overwrite each other silently: a caller that passed the revision it read gets 409
  ``Conflict`` when it moved; without one, the change is re-applied to the newest value (a few tries).
- Only hashes of secrets are stored; a new secret (``sk-gw-`` + 43 url-safe characters) is returned
  once, by ``create_key`` and ``rotate_key``. Views (``key_view``) never carry a secret or a hash.
- Spend and rate windows are read from ``GW_LEDGER`` (``ledger_key``): an absent entry or bucket is zero.

Every change is recorded in the audit log (``infra/audit_log.py``) once made, published as this
process's NATS ``identity`` (the chain records the actor that subject authenticates: the CLI's
``nats:admin``; the admin API's ``admin-api:<key name> via nats:ingress``): what changed, before and
after, never a secret or its hash; an entry that cannot be stored raises ``AuditNotRecorded`` (the
change stands).

Errors are ``schemas.errors`` classes with the field at fault in ``param``: ``InvalidRequest`` (400),
``NotFound`` (404), ``Conflict`` (409).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyWrongLastSequenceError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from infra.audit_log import record
from schemas import subjects
from schemas.audit import AuditEntry
from schemas.audit_actor import nats_actor
from schemas.audit_detail import key_entry, level_entry
from schemas.config import hash_api_key
from schemas.config_cache import CacheSettings
from schemas.errors import Conflict, InvalidRequest, NotFound
from schemas.governance import (
    KEY_PREFIX,
    Access,
    KeyCache,
    KeySecret,
    LedgerState,
    LevelPolicy,
    Limits,
    VirtualKey,
    ledger_key,
    nusd_to_usd,
    period_id,
    period_reset,
)
from schemas.governance_admin import (
    AccessFields,
    BudgetSet,
    KeyCreate,
    KeyRotate,
    KeyUpdate,
    LevelName,
    LimitFields,
    parse_duration,
    parse_expiry,
)
from schemas.wire import JSONValue, decode, encode, replace

RETRIES = 5


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(6)


def kv_key(key_id: str) -> str:
    return f"key.{key_id}"


@dataclass(frozen=True, slots=True)
class ConfigFacts:
    """What the live config says that a key must agree with: the profiles it may name, the ids the
    config file's keys already take. ``None``: not known (nothing checked)."""

    profiles: Collection[str] | None = None
    config_key_ids: Collection[str] = ()


@dataclass(frozen=True, slots=True)
class Issued:
    """A key with the one copy of its new secret."""

    key: VirtualKey
    secret: str
    revision: int


def _limits(current: Limits, fields: LimitFields | BudgetSet) -> Limits:
    """``current`` with the fields the caller gave (``model_fields_set``); a given ``null`` clears."""
    given = fields.model_fields_set
    names = {"usd": "budget_usd", "period": "budget_period"}
    changes: dict[str, Any] = {}
    for name in given & {"rpm", "tpm", "budget_usd", "budget_period", "alert_at", "usd", "period"}:
        value = getattr(fields, name)
        target = names.get(name, name)
        if target == "budget_period" and value is None:
            value = "month"
        changes[target] = value
    return replace(current, **changes) if changes else current


def _access(current: Access, fields: AccessFields) -> Access:
    given = fields.model_fields_set
    changes: dict[str, Any] = {}
    for name in given & {"require_tags", "providers", "max_tokens", "allow_unpriced"}:
        value = getattr(fields, name)
        if value is None and name != "max_tokens":  # null resets to the default
            value = {"require_tags": {}, "providers": [], "allow_unpriced": False}[name]
        changes[name] = value
    return replace(current, **changes) if changes else current


def usage(limits: Limits, state: LedgerState | None, now: float) -> dict[str, Any]:
    """Spend and remaining budget in the current period, requests and tokens in the last minute."""
    state = state or LedgerState()
    period = period_id(limits.budget_period, now)
    spent = state.spent_in(period)
    held_nusd, held_tokens = state.held(now)
    requests, tokens = state.in_window(now)
    budget = limits.budget_nusd
    return {
        "period": period,
        "resets_at": period_reset(limits.budget_period, now),
        "spent_usd": nusd_to_usd(spent),
        "held_usd": nusd_to_usd(held_nusd),
        "remaining_usd": nusd_to_usd(max(0, budget - spent - held_nusd)) if budget is not None else None,
        "requests_last_minute": requests,
        "tokens_last_minute": tokens,
        "held_tokens": held_tokens,
    }


def key_status(key: VirtualKey, now: float) -> str:
    if key.revoked_at is not None and key.revoked_at <= now:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def plain(value: Any) -> Any:
    """A message as plain JSON values, every field included (the wire omits defaults)."""
    if isinstance(value, msgspec.Struct):
        return {name: plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def _cache(settings: CacheSettings | None) -> KeyCache | None:
    return KeyCache(**settings.model_dump()) if settings is not None else None


def key_view(key: VirtualKey, now: float, revision: int | None = None) -> dict[str, Any]:
    """A key as an admin sees it: never a secret or its hash."""
    out: dict[str, Any] = plain(key)
    out["status"] = key_status(key, now)
    out["secrets"] = [{"created_at": s.created_at, "valid_until": s.valid_until} for s in key.secrets]
    if revision is not None:
        out["revision"] = revision
    return out


class GovernanceAdmin:
    """Key and budget operations over the ``GW_KEYS``, ``GW_LIMITS`` and ``GW_LEDGER`` buckets."""

    def __init__(self, js: JetStreamContext, facts: ConfigFacts | None = None,
                 clock: Callable[[], float] = time.time, *, identity: str, actor: str | None = None,
                 reported_by: str | None = None) -> None:
        """``identity``: the NATS identity of this process's connection, the subject its audit entries go
        out on (the actor the chain records); ``actor``: what the entries claim, ``nats:<identity>``
        unless ingress names the admin key that authenticated the caller; ``reported_by``: the CLI's
        ``user@host``, an unauthenticated hint kept in each entry's detail."""
        self.js = js
        self.facts = facts or ConfigFacts()
        self.clock = clock
        self.identity = identity
        self.actor = actor or nats_actor(identity)
        self.hint: dict[str, JSONValue] = {} if reported_by is None else {"reported_by": reported_by}

    async def _audit(self, entry: AuditEntry) -> None:
        await record(self.js, entry, self.identity)

    async def _bucket(self, name: str) -> KeyValue:
        try:
            return await self.js.key_value(name)
        except NotFoundError:
            raise NotFound(f"The {name} bucket does not exist: start the gateway once (`gateway up`) so it "
                           "declares its buckets.", code="bucket_not_found") from None

    # -- keys -------------------------------------------------------------------------------------

    def _check_profile(self, profile: str | None) -> None:
        known = self.facts.profiles
        if profile is not None and known is not None and profile not in known:
            raise InvalidRequest(f"Unknown guardrail profile {profile!r} (known: {', '.join(sorted(known))}); "
                                 "define it in the config's guardrail_profiles first.",
                                 param="guardrail_profile", code="unknown_guardrail_profile")

    def _expiry(self, text: str | None, now: float) -> float | None:
        try:
            return parse_expiry(text, now) if text is not None else None
        except ValueError as exc:
            raise InvalidRequest(str(exc), param="expires") from None

    async def create_key(self, req: KeyCreate) -> Issued:
        now = self.clock()
        key_id = req.id or new_key_id()
        if key_id in self.facts.config_key_ids:
            raise Conflict(f"Key id {key_id!r} is taken by a key of the config file; choose another id.",
                           param="id", code="key_exists")
        self._check_profile(req.guardrail_profile)
        secret = new_secret()
        key = VirtualKey(
            id=key_id, tenant=req.tenant, team=req.team, user=req.user, name=req.name, models=list(req.models),
            max_input_chars=req.max_input_chars, guardrail_profile=req.guardrail_profile, tags=dict(req.tags),
            secrets=[KeySecret(sha256=hash_api_key(secret), created_at=now)], cache=_cache(req.cache),
            limits=_limits(Limits(), req), access=_access(Access(), req),
            created_at=now, updated_at=now, expires_at=self._expiry(req.expires, now))
        kv = await self._bucket(subjects.BUCKET_KEYS)
        try:
            revision = await kv.create(kv_key(key_id), encode(key))
        except KeyWrongLastSequenceError:
            raise Conflict(f"A key with id {key_id!r} exists already; choose another id or update it.",
                           param="id", code="key_exists") from None
        await self._audit(key_entry("created", None, key, self.actor, **self.hint))
        return Issued(key, secret, revision)

    async def get_key(self, key_id: str) -> tuple[VirtualKey, int]:
        kv = await self._bucket(subjects.BUCKET_KEYS)
        try:
            entry = await kv.get(kv_key(key_id))
        except NotFoundError:
            raise NotFound(f"No key with id {key_id!r}; `gateway keys list` shows the keys.",
                           param="id", code="key_not_found") from None
        if entry.value is None:
            raise NotFound(f"No key with id {key_id!r}.", param="id", code="key_not_found")
        return decode(entry.value, VirtualKey), entry.revision or 0

    async def list_keys(self, tenant: str | None = None, team: str | None = None) -> list[VirtualKey]:
        kv = await self._bucket(subjects.BUCKET_KEYS)
        try:
            names = await kv.keys()
        except NoKeysError:
            return []
        keys: list[VirtualKey] = []
        for name in sorted(names):
            try:
                entry = await kv.get(name)
            except NotFoundError:  # deleted meanwhile
                continue
            if entry.value is None:
                continue
            key = decode(entry.value, VirtualKey)
            if (tenant is None or key.tenant == tenant) and (team is None or key.team == team):
                keys.append(key)
        return keys

    async def show_key(self, key_id: str) -> dict[str, Any]:
        key, revision = await self.get_key(key_id)
        now = self.clock()
        state = await self.ledger(ledger_key("key", key_id))
        return {**key_view(key, now, revision), "usage": usage(key.limits, state, now)}

    async def _change(self, key_id: str, change: Callable[[VirtualKey, float], VirtualKey],
                      revision: int | None = None) -> tuple[VirtualKey, VirtualKey, int]:
        """Apply ``change`` by compare-and-set; with ``revision``, only to that revision (else 409).
        Returns the key before and after, and the revision written."""
        kv = await self._bucket(subjects.BUCKET_KEYS)
        for _ in range(RETRIES):
            key, current = await self.get_key(key_id)
            if revision is not None and revision != current:
                raise Conflict(f"Key {key_id!r} changed since revision {revision} (now {current}); read it "
                               "again and retry.", param="revision", code="revision_mismatch")
            now = self.clock()
            changed = change(key, now)
            try:
                written = await kv.update(kv_key(key_id), encode(changed), last=current)
            except KeyWrongLastSequenceError:
                if revision is not None:
                    raise Conflict(f"Key {key_id!r} changed meanwhile; read it again and retry.",
                                   param="revision", code="revision_mismatch") from None
                continue
            return key, changed, written
        raise Conflict(f"Key {key_id!r} kept changing under {RETRIES} attempts; retry.", code="revision_mismatch")

    async def update_key(self, key_id: str, req: KeyUpdate) -> tuple[VirtualKey, int]:
        given = req.model_fields_set
        if "guardrail_profile" in given:
            self._check_profile(req.guardrail_profile)
        plain = {"tenant", "team", "user", "name", "models", "max_input_chars", "guardrail_profile", "tags"}

        def change(key: VirtualKey, now: float) -> VirtualKey:
            fields: dict[str, Any] = {}
            for name in given & plain:
                value = getattr(req, name)
                if value is None and name != "guardrail_profile":
                    raise InvalidRequest(f"{name} cannot be null.", param=name)
                fields[name] = value
            if "expires" in given:
                fields["expires_at"] = self._expiry(req.expires or "never", now)
            if "cache" in given:
                fields["cache"] = _cache(req.cache)
            return replace(key, **fields, limits=_limits(key.limits, req), access=_access(key.access, req),
                           updated_at=now)

        before, after, written = await self._change(key_id, change, req.revision)
        await self._audit(key_entry("updated", before, after, self.actor, **self.hint))
        return after, written

    async def revoke_key(self, key_id: str) -> tuple[VirtualKey, int]:
        """Revoked from now on; revoking again changes nothing (the first time is kept)."""
        key, revision = await self.get_key(key_id)
        if key.revoked_at is not None:
            return key, revision
        before, after, written = await self._change(key_id, lambda k, now: k if k.revoked_at is not None
                                                    else replace(k, revoked_at=now, updated_at=now))
        if before.revoked_at is None:
            await self._audit(key_entry("revoked", before, after, self.actor, **self.hint))
        return after, written

    async def rotate_key(self, key_id: str, req: KeyRotate) -> Issued:
        """A new secret; the ones still valid keep working for ``grace`` more (0: no longer)."""
        grace = parse_duration(req.grace)
        secret = new_secret()

        def change(key: VirtualKey, now: float) -> VirtualKey:
            if key.revoked_at is not None:
                raise Conflict(f"Key {key_id!r} is revoked: create a new key instead.", code="key_revoked")
            until = now + grace
            old = [replace(s, valid_until=min(until, s.valid_until) if s.valid_until is not None else until)
                   for s in key.secrets if s.valid_until is None or s.valid_until > now]
            if grace <= 0:
                old = []
            return replace(key, secrets=[*old, KeySecret(sha256=hash_api_key(secret), created_at=now)],
                           updated_at=now)

        before, key, revision = await self._change(key_id, change)
        await self._audit(key_entry("rotated", before, key, self.actor, grace_s=grace, **self.hint))
        return Issued(key, secret, revision)

    # -- team and tenant limits ------------------------------------------------------------------------

    async def get_level(self, kind: LevelName, level_id: str) -> tuple[LevelPolicy | None, int]:
        kv = await self._bucket(subjects.BUCKET_LIMITS)
        try:
            entry = await kv.get(f"{kind}.{level_id}")
        except NotFoundError:
            return None, 0
        if entry.value is None:
            return None, 0
        return decode(entry.value, LevelPolicy), entry.revision or 0

    async def set_level(self, kind: LevelName, level_id: str, req: BudgetSet) -> tuple[LevelPolicy, int]:
        kv = await self._bucket(subjects.BUCKET_LIMITS)
        for _ in range(RETRIES):
            current, revision = await self.get_level(kind, level_id)
            now = self.clock()
            base = current or LevelPolicy(kind=kind, id=level_id)
            policy = replace(base, limits=_limits(base.limits, req), access=_access(base.access, req), updated_at=now)
            try:
                if revision:
                    written = await kv.update(f"{kind}.{level_id}", encode(policy), last=revision)
                else:
                    written = await kv.create(f"{kind}.{level_id}", encode(policy))
            except KeyWrongLastSequenceError:
                continue
            await self._audit(level_entry(current, policy, self.actor, **self.hint))
            return policy, written
        raise Conflict(f"The {kind} {level_id!r} limits kept changing under {RETRIES} attempts; retry.",
                       code="revision_mismatch")

    async def show_level(self, kind: LevelName, level_id: str) -> dict[str, Any]:
        policy, revision = await self.get_level(kind, level_id)
        now = self.clock()
        shown = policy or LevelPolicy(kind=kind, id=level_id)
        state = await self.ledger(ledger_key(kind, level_id))
        return {**plain(shown), "configured": policy is not None, "revision": revision,
                "usage": usage(shown.limits, state, now)}

    # -- the ledger ---------------------------------------------------------------------------------

    async def ledger(self, key: str) -> LedgerState | None:
        try:
            kv = await self.js.key_value(subjects.BUCKET_LEDGER)
            entry = await kv.get(key)
        except NotFoundError:
            return None
        return decode(entry.value, LedgerState) if entry.value else None
