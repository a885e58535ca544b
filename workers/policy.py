"""Policy worker: authenticate the key by hash, authorize model and input size, record the tenant and
team, then run the input guardrails of the request's profile.

Keys come from the process's live key directory (``infra/key_directory.py``: the live config's keys and
the watched ``GW_KEYS`` bucket): a key added, revoked or expired takes effect without a restart.
Guardrails follow the live config: one ``GuardrailSet`` per (config version, profile), built on first
use and dropped when a new version arrives (``infra.derived.Derived``). The profile
is the one the redaction stage put on the envelope (``guardrail_profile``), else the key's, the model
alias's, or ``default``. Every verdict is appended to
``envelope.verdicts``; a ``block`` ends the request with 400 ``content_blocked``, verdicts included.

Tenant policy: the key's access rules merged with its team's and tenant's (``stages.governance.access``,
once per config version per key) go on the envelope (``access``, only when there is a rule) for routing
to keep to; rules that contradict each other end the request here (403 ``policy_denied``), and so does a
request above the key's ``max_tokens`` cap, or without ``max_tokens`` under a cap (400
``max_tokens_exceeded`` / ``max_tokens_required``: never clamped).

Budgets and rate limits (``workers/admission.py``): after the input guardrails, the request reserves its
maximum cost and its place in the RPM/TPM windows on the shared ledger against every level with limits
(key, team, tenant, per model); a refusal ends it here with a 429 (or a 403 for an unpriced model a
budget cannot count) and it never reaches a provider. Its ``Admission`` travels on the envelope (the
answer's ``x-ratelimit-*`` headers, its record's scopes); the process where the request ends settles it
to its actual cost (``workers/settlement.py``), and the policy replicas' shared ``ledger`` consumer
settles the records whose settlement failed there.
"""

from __future__ import annotations

import time

from msgspec import UNSET

from infra import bootstrap
from infra.derived import Derived
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.envelope import Envelope
from schemas.errors import GatewayError, PermissionDenied
from schemas.events import EventType, StageAttrs
from schemas.governance import Access, Admission, KeyDirectory, VirtualKey
from schemas.key_auth import authenticate
from schemas.wire import replace
from stages.cache import plan_for
from stages.governance.access import POLICY_DENIED, check_max_tokens, key_access
from stages.governance.estimate import Pricing, estimate
from stages.governance.scopes import Scope, scopes_for
from stages.guardrails.base import Subject
from stages.guardrails.runner import GuardrailSet, RunOutcome
from stages.policy import authorize
from stages.timing import with_stage_time
from workers.admission import Admitter
from workers.app import main
from workers.context import WorkerContext
from workers.guardrail_sets import GuardrailSets, profile_of
from workers.worker import StageWorker

STAGE = "policy"


def check_input(guardrails: GuardrailSet, envelope: Envelope, key: VirtualKey) -> RunOutcome:
    """The input guardrails' verdicts on the request, as the provider will see it (after redaction)."""
    if not guardrails.input:
        return RunOutcome()
    return guardrails.run(Subject(phase="input", request=envelope.body, tenant=key.tenant, api_key_id=key.id,
                                  model=envelope.model_requested))


def summary(profile: str, outcome: RunOutcome, input_chars: int) -> StageAttrs:
    """What the stage event says: the body's size, the guardrail profile, and who flagged or blocked."""
    return StageAttrs(input_chars=input_chars, guardrail_profile=profile,
                      guardrails_triggered=outcome.triggered or UNSET)


def access_of(directory: KeyDirectory, key: VirtualKey) -> Access | str | None:
    """A key's effective access (``None``: no rule applies), or why its rules can never be met: its own
    rules, its team's and its tenant's, as the directory holds them (the config file's and the buckets')."""
    try:
        return key_access(key.id, key.access, key.team, key.tenant, directory.level)
    except PermissionDenied as exc:
        return exc.message


def check_access(access: Access | str | None, envelope: Envelope) -> GatewayError | None:
    """Why the key's policy refuses this request before routing, if it does."""
    if isinstance(access, str):
        return PermissionDenied(access, code=POLICY_DENIED)
    try:
        check_max_tokens(access, envelope.body, envelope.endpoint)
    except GatewayError as exc:
        return exc
    return None


def pricing(config: GatewayConfig) -> Pricing:
    return Pricing(config, bootstrap.price_book(config))


def unpriced_refusal(scopes: list[Scope], model: str) -> tuple[Scope, PermissionDenied] | None:
    """A budgeted scope that cannot count an unpriced model's spend refuses it (unless it allows it)."""
    for scope in scopes:
        if scope.budget_nusd is not None and not scope.allow_unpriced:
            return scope, PermissionDenied(
                f"Model '{model}' has no known price, so the budget of {scope.level} cannot count its spend. "
                f"Give its targets a price (a target's `price` or the config's `prices`), or allow unpriced "
                f"models for {scope.level} (`access: {{allow_unpriced: true}}`).",
                param="model", code="model_unpriced")
    return None


class PolicyWorker(StageWorker):
    """The stage's work on one request, with what it derives per config version (keys, guardrail sets)."""

    name = STAGE
    subject = subjects.REQ_POLICY

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        live = self.live = ctx.live
        self.keys = ctx.keys
        self._access: tuple[KeyDirectory, dict[str, Access | str | None]] | None = None
        self.sets = Derived(GuardrailSets.of).follow(live)
        self.pricing = Derived(pricing).follow(live)
        self.admitter = Admitter(ctx.ledger)
        self.settler = ctx.settler

    async def after_start(self) -> None:
        await self.ctx.open_ledger()
        self.settler.start()  # the durable consumer: records whose settlement failed where they ended

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.settler.stop()

    async def prepare(self) -> None:
        """Build every active profile's guardrail set and run its input guardrails once, before the first request."""
        live = self.live
        config = live.current
        sets = self.sets.get(live.version, config)
        subject = Subject(phase="input", request={"messages": [{"role": "user", "content": "Warm-up: hello."}]},
                          tenant="", api_key_id="", model="")
        for name in config.active_profiles:
            guardrails = sets.get(config.profile(name))
            if guardrails.input:
                guardrails.run(subject)

    def access_of(self, key: VirtualKey) -> Access | str | None:
        """``access_of`` for this key, kept per directory (a new one comes with any change to keys,
        team or tenant rules, or the config)."""
        directory = self.keys.get()
        cached = self._access
        if cached is None or cached[0] is not directory:
            cached = self._access = (directory, {})
        by_key = cached[1]
        if key.id not in by_key:
            by_key[key.id] = access_of(directory, key)
        return by_key[key.id]

    async def work(self, envelope: Envelope, started: float) -> None:
        live = self.live
        version, config = live.version, live.current
        key = authenticate(self.keys.get(), envelope.api_key_hash, time.time())
        size = authorize(key, envelope.model_requested, envelope.body)
        access = self.access_of(key)
        refused = check_access(access, envelope)
        if refused is not None:  # ended here, with the key's tenant and team on the record
            await self.runtime.fail(with_stage_time(envelope, STAGE, started, tenant=key.tenant, api_key_id=key.id,
                                                    team=key.team),
                                    refused, started, EventType.POLICY_FAILED)
            return
        profile = profile_of(config, envelope, key)
        outcome = check_input(self.sets.get(version, config).get(profile), envelope, key)
        verdicts = [*envelope.verdicts, *outcome.verdicts] if outcome.verdicts else envelope.verdicts
        cache = plan_for(config, key, envelope.model_requested, envelope.body, key.tenant, envelope.cache_directive)
        out = replace(envelope, tenant=key.tenant, api_key_id=key.id, team=key.team,
                      access=access if isinstance(access, Access) else None,
                      guardrail_profile=profile.profile, verdicts=verdicts, cache=cache.status, cache_key=cache.key,
                      cache_ttl_s=cache.ttl_s, cache_max_bytes=cache.max_entry_bytes, cache_scope=cache.scope,
                      cache_similarity_min=cache.similarity)
        if outcome.blocked is not None:
            # ended here, with this envelope: the record carries the verdicts (raising would lose them)
            await self.runtime.fail(with_stage_time(out, STAGE, started), outcome.blocked, started,
                                    EventType.REQUEST_BLOCKED)
            return
        governed = await self.govern(out, key, version, config, started)
        if governed is None:
            return
        # the stage's time includes its ledger round trips
        out = self.runtime.event(with_stage_time(governed, STAGE, started), EventType.REQUEST_AUTHORIZED, started,
                                 attrs=summary(profile.profile, outcome, size))
        await self.runtime.forward(subjects.REQ_ROUTE, out)

    async def govern(self, envelope: Envelope, key: VirtualKey, version: str, config: GatewayConfig,
                     started: float) -> Envelope | None:
        """Reserve on every limited scope; the envelope with its admission, or ``None`` when refused (the
        request is ended here, its refusal recorded)."""
        scopes = scopes_for(self.keys.get(), key, envelope.model_requested)
        if not scopes:
            return envelope
        est = estimate(envelope.body, self.pricing.get(version, config).of(envelope.model_requested),
                       config.governance.default_max_output_tokens)
        if est.unpriced and (refused := unpriced_refusal(scopes, envelope.model_requested)) is not None:
            scope, error = refused
            out = with_stage_time(envelope, STAGE, started, admission=Admission(refused=f"{scope.level} unpriced"))
            await self.runtime.fail(out, error, started, EventType.ended(STAGE, "failed"))
            return None
        admitted = await self.admitter.admit(envelope.request_id, scopes, est, envelope.deadline,
                                             unpriced=est.unpriced)
        out = replace(envelope, admission=admitted.admission)
        if admitted.error is not None:
            await self.runtime.fail(with_stage_time(out, STAGE, started), admitted.error, started,
                                    EventType.ended(STAGE, "failed"))
            return None
        return out


setup = PolicyWorker.setup


if __name__ == "__main__":
    main("policy")
