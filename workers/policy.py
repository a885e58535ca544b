"""Policy worker: authenticate the key by hash, authorize model and input size, record the tenant, then
run the input guardrails of the request's profile.

Keys follow the live config (``infra/live_config.py``): a key added or removed takes effect without a
restart. Guardrails do too: one ``GuardrailSet`` per (config version, profile), built on first use and
dropped when a new version arrives. The profile is the one the redaction stage put on the envelope
(``guardrail_profile``), else the key's, the model alias's, or ``default``. Every verdict is appended to
``envelope.verdicts``; a ``block`` ends the request with 400 ``content_blocked``, verdicts included.
"""

from __future__ import annotations

from typing import Any

from nats.aio.msg import Msg

from infra.live_config import LiveConfig
from schemas import subjects
from schemas.config import ApiKey, GatewayConfig
from schemas.envelope import Envelope
from schemas.events import EventType
from stages.guardrails.base import Subject
from stages.guardrails.runner import GuardrailSet, RunOutcome
from stages.policy import KeyIndex, authenticate, authorize
from stages.timing import with_stage_time
from workers.app import Hooks, main
from workers.context import WorkerContext
from workers.guardrail_sets import GuardrailSets, profile_of
from workers.runtime import StageRuntime

STAGE = "policy"


def check_input(guardrails: GuardrailSet, envelope: Envelope, key: ApiKey) -> RunOutcome:
    """The input guardrails' verdicts on the request, as the provider will see it (after redaction)."""
    if not guardrails.input:
        return RunOutcome()
    return guardrails.run(Subject(phase="input", request=envelope.body, tenant=key.tenant, api_key_id=key.id,
                                  model=envelope.model_requested))


def summary(profile: str, outcome: RunOutcome) -> dict[str, Any]:
    """What the stage event says about guardrails: the profile, and who flagged or blocked."""
    attrs: dict[str, Any] = {"guardrail_profile": profile}
    triggered = outcome.triggered
    if triggered:
        attrs["guardrails_triggered"] = triggered
    return attrs


class Policy:
    """The stage's work on one request, with what it keeps across requests (keys, guardrail sets)."""

    def __init__(self, live: LiveConfig, runtime: StageRuntime) -> None:
        self.live = live
        self.runtime = runtime
        self.keys = KeyIndex(live.current.keys)
        self.sets = GuardrailSets()
        live.on_change(self._reload_keys)

    def _reload_keys(self, config: GatewayConfig, _version: str) -> None:
        self.keys = KeyIndex(config.keys)

    def warm(self) -> None:
        """Build every active profile's guardrail set and run its input guardrails once, before the first request."""
        config = self.live.current
        subject = Subject(phase="input", request={"messages": [{"role": "user", "content": "Warm-up: hello."}]},
                          tenant="", api_key_id="", model="")
        for name in config.active_profiles:
            guardrails = self.sets.get(self.live.version, config.profile(name))
            if guardrails.input:
                guardrails.run(subject)

    async def work(self, envelope: Envelope, started: float) -> None:
        key = authenticate(self.keys, envelope.api_key_hash)
        size = authorize(key, envelope.model_requested, envelope.body)
        version = self.live.version
        config = self.live.get(version) or self.live.current
        profile = profile_of(config, envelope)
        outcome = check_input(self.sets.get(version, profile), envelope, key)
        verdicts = [*envelope.verdicts, *outcome.verdicts] if outcome.verdicts else envelope.verdicts
        out = with_stage_time(envelope, STAGE, started, tenant=key.tenant, api_key_id=key.id,
                              guardrail_profile=profile.profile, verdicts=verdicts)
        if outcome.blocked is not None:
            # ended here, with this envelope: the record carries the verdicts (raising would lose them)
            await self.runtime.fail(out, outcome.blocked, started, EventType.REQUEST_BLOCKED)
            return
        out = self.runtime.event(out, EventType.REQUEST_AUTHORIZED, started,
                                 attrs={"input_chars": size, **summary(profile.profile, outcome)})
        await self.runtime.forward(subjects.REQ_ROUTE, out)


async def setup(ctx: WorkerContext) -> Hooks:
    policy = Policy(ctx.live, StageRuntime(ctx, STAGE))
    policy.warm()

    async def on_request(msg: Msg) -> None:
        policy.runtime.accept(msg.data, policy.work)

    ctx.subscribe(subjects.REQ_POLICY, on_request, queue=subjects.QUEUE_GROUPS[subjects.REQ_POLICY])

    return Hooks(cleanup=policy.runtime.drain)


if __name__ == "__main__":
    main("policy")
