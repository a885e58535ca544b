"""Redaction worker: the first hop. Takes each accepted request from the GW_REQ work queue (durable,
end-to-end ack) and opens it (sealed by ingress, ``schemas/sealed_request.py``), resolves its guardrail
profile (key's, else model alias's, else default; the key from the process's key directory, so a
``GW_KEYS`` key's profile applies), applies that profile's PII operators, seals the placeholder map
into the envelope, records a ``pii`` verdict, and carries the JetStream ack subject down the core-NATS
chain. A ``block`` operator ends the request here (400 ``pii_blocked``), the verdict already on the
envelope. A request that does not open is answered ``request_unreadable``, recorded and acked.

Each profile gets its own scanner; profiles with the same scanner inputs share one, and scanners with
the same ``(engine, custom)`` share one presidio analyzer (``bootstrap.pii_scanner``). Pattern scans
(µs to ms) run inline; NER scans (≈ 3–25 ms of spaCy) run on a small thread pool, off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nats.aio.msg import Msg

from infra import bootstrap
from infra.derived import Derived
from schemas import subjects
from schemas.config import GatewayConfig, Guardrails, Redaction
from schemas.envelope import Envelope
from schemas.events import EventType, StageAttrs
from schemas.key_auth import key_of
from schemas.sealed_request import RequestUnreadable, open_request, stand_in
from schemas.wire import replace
from stages.envelope_redaction import ProfileRedactor, redact_envelope
from stages.redaction import RedactionResult
from stages.timing import with_stage_time
from stages.vault import seal
from workers.app import main
from workers.context import WorkerContext
from workers.intake import PullIntake
from workers.runtime import STALE_S, Work
from workers.worker import StageWorker

log = logging.getLogger("gateway.redaction")

STAGE = "redaction"
SETTLE_AFTER_RECONNECT_S = 0.75
NER_THREADS = 2


def default_salt(sealing_key: bytes) -> bytes:
    return hmac.new(sealing_key, b"pii-hash-salt", hashlib.sha256).digest()


def resolve_salt(ref: str | None, default: bytes) -> bytes:
    """``env:NAME`` → the variable's value; None → ``default``. A missing or empty variable is an error."""
    if ref is None:
        return default
    name = ref.removeprefix("env:")
    value = os.environ.get(name)
    if not value:
        raise ValueError(f"redaction.hash_salt: environment variable {name} is not set in this redaction process; "
                         "set it and restart `gateway up` (a config change cannot give a running process a new "
                         "variable)")
    return value.encode()


def redaction_inputs(redaction: Redaction) -> tuple[Any, ...]:
    """What a profile's redactor is built from: profiles with equal inputs share one."""
    if not redaction.enabled:
        return ("off",)
    return (redaction.engine, tuple(redaction.entity_types), redaction.score_threshold,
            tuple(c.model_dump_json() for c in redaction.custom), tuple(redaction.allow_list),
            tuple(redaction.allow_patterns), redaction.hash_salt)


def scanner_inputs(config: GatewayConfig) -> object:
    """Every active profile's inputs: a change to any rebuilds the set (unchanged analyzers are reused)."""
    return tuple(sorted((name, redaction_inputs(g.redaction)) for name, g in config.active_profiles.items()))


def build_redactor(redaction: Redaction, salt: bytes) -> ProfileRedactor:
    if not redaction.enabled:
        return ProfileRedactor(None, salt)
    # only the built-ins here: bootstrap adds the custom recognizers' entities
    custom = {c.entity for c in redaction.custom}
    scanner = bootstrap.pii_scanner(
        [e for e in redaction.entity_types if e not in custom], redaction.score_threshold, redaction.custom,
        engine=redaction.engine, allow_list=redaction.allow_list, allow_patterns=redaction.allow_patterns)
    return ProfileRedactor(scanner, resolve_salt(redaction.hash_salt, salt), redaction.engine)


def build_redactors(config: GatewayConfig, salt: bytes) -> dict[str, ProfileRedactor]:
    """One redactor per profile a request can resolve to (``default`` included); equal inputs share one."""
    built: dict[tuple[Any, ...], ProfileRedactor] = {}
    out: dict[str, ProfileRedactor] = {}
    for name, guardrails in config.active_profiles.items():
        inputs = redaction_inputs(guardrails.redaction)
        if inputs not in built:
            built[inputs] = build_redactor(guardrails.redaction, salt)
        out[name] = built[inputs]
    return out


class RedactionWorker(StageWorker):
    """The first hop: no subscription of its own (``subject`` is empty); it pulls from the GW_REQ work
    queue as fast as this process works (``workers/intake.py``; the durable consumer is declared in
    ``infra/jetstream.py``, shared by every replica)."""

    name = STAGE

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        settings = ctx.settings
        self.key = settings.sealing_key()
        salt = self.salt = default_salt(self.key)
        # {profile: redactor}, rebuilt in a thread when any profile's redaction settings change and swapped
        # when ready: each request uses the config and redactors it started with (hot reload).
        self.redactors = Derived(lambda config: build_redactors(config, salt), inputs=scanner_inputs).follow(ctx.live)
        self.ner_pool = ThreadPoolExecutor(max_workers=NER_THREADS, thread_name_prefix="pii-ner")
        self.keys = ctx.keys
        # redactors of profiles no config key or model alias names (a GW_KEYS key's), by their inputs:
        # built on first use, off the event loop
        self.extra: dict[tuple[Any, ...], ProfileRedactor] = {}
        # the interactive lane pulls the callers' requests; the batch lane's processes (GATEWAY_LANE=batch)
        # pull batch jobs' lines and async requests from a consumer of their own, paced by their drivers
        self.interactive = ctx.lane == "interactive"
        consumer = subjects.CONSUMER_REDACT if self.interactive else subjects.CONSUMER_REDACT_BATCH
        self.intake = PullIntake(lambda: ctx.nc, subjects.STREAM_REQUESTS, consumer, self.take,
                                 max_inflight=settings.intake_inflight)

    async def prepare(self) -> None:
        warm(self.redactors.current.value)

    def take(self, msg: Msg) -> None:
        """A request pulled from GW_REQ, opened (sealed by ingress: ``schemas/sealed_request.py``); the
        intake's credit comes back once the stage is done with it, however it ended. One that does not
        open is not run: it is answered (if its caller still waits) with ``request_unreadable``,
        recorded and acked, like any failed request, so it is neither lost nor redelivered forever."""
        started = time.perf_counter()
        try:
            envelope = open_request(msg.data, msg.headers, self.key)
        except RequestUnreadable as exc:
            stand = stand_in(msg.headers)
            log.error("redaction: request %s cannot be opened (%s); answered with request_unreadable and acked",
                      stand.request_id, exc.__cause__ or exc)
            self.runtime.take(stand, refuse(exc), started, ack_subject=msg.reply, then=self.intake.done)
            return
        taken = self.runtime.take(envelope, self.work, started, ack_subject=msg.reply, then=self.intake.done)
        # its wait in GW_REQ (a rerun's is its first run's); a batch line's wait is its driver's pacing
        if taken is not None and taken.delivery == 1 and self.interactive:
            self.ctx.load.waited(time.time() - taken.received_at)

    async def work(self, envelope: Envelope, started: float) -> None:
        ctx, runtime = self.ctx, self.runtime
        again = envelope.delivery == 1 and handed_out_again(envelope, ctx.reconnected_at)
        if again:  # every process reconnects within a reconnect wait or two: give a live run's one time to
            await asyncio.sleep(max(0.0, ctx.reconnected_at + SETTLE_AFTER_RECONNECT_S - time.time()))
        if envelope.delivery > 1 or again:  # is a run of it alive, or does its caller have the answer?
            if not await runtime.settle_rerun(envelope, await runtime.check_rerun(envelope), started):
                return
        built = self.redactors.current
        config, by_profile = built.config, built.value
        key = key_of(self.keys.get(), envelope.api_key_hash)  # unknown: the policy stage refuses it next
        guardrails = config.guardrails_of(key.guardrail_profile if key is not None else None,
                                          envelope.model_requested)
        redactor = by_profile.get(guardrails.profile) or await self.redactor_for(guardrails, by_profile)
        tenant = key.tenant if key is not None else ""
        if redactor.offload:
            outcome = await asyncio.get_running_loop().run_in_executor(
                self.ner_pool, redact_envelope, envelope, guardrails, redactor, tenant)
        else:
            outcome = redact_envelope(envelope, guardrails, redactor, tenant)
        verdicts = [*envelope.verdicts, outcome.verdict] if outcome.verdict is not None else envelope.verdicts
        if outcome.blocked is not None:
            # the body still holds the values: ``redacted`` stays False so it is never stored
            out = replace(envelope, guardrail_profile=guardrails.profile, verdicts=verdicts,
                          redactions=outcome.blocked.counts)
            await runtime.fail(out, outcome.blocked, started, EventType.REQUEST_BLOCKED)
            return
        result = outcome.result or RedactionResult(body=envelope.body)
        sealed = result.mapping and envelope.endpoint != "embeddings"  # an embedding has nothing to restore
        out = with_stage_time(
            envelope, STAGE, started,
            body=result.body,
            # bound to this request: a sealed map cannot be replayed onto another envelope
            vault=seal(result.mapping, self.key, aad=envelope.request_id.encode()) if sealed else None,
            redactions=result.counts,
            redacted=True,
            guardrail_profile=guardrails.profile,
            verdicts=verdicts,
        )
        out = runtime.event(out, EventType.REQUEST_REDACTED, started,
                            attrs=StageAttrs(counts=result.counts, profile=guardrails.profile,
                                             redelivered=envelope.delivery > 1))
        await runtime.forward(subjects.REQ_POLICY, out)

    async def redactor_for(self, guardrails: Guardrails, by_profile: dict[str, ProfileRedactor]) -> ProfileRedactor:
        """The redactor of a profile only a ``GW_KEYS`` key names: built (and warmed) once per distinct
        redaction settings, in the NER pool; one of ``by_profile`` when its settings are the same."""
        inputs = redaction_inputs(guardrails.redaction)
        found = self.extra.get(inputs)
        if found is None:
            config = self.redactors.current.config
            found = next((by_profile[name] for name, g in config.active_profiles.items()
                          if name in by_profile and redaction_inputs(g.redaction) == inputs), None)
            if found is None:
                found = await asyncio.get_running_loop().run_in_executor(
                    self.ner_pool, build_and_warm, guardrails.redaction, self.salt)
            self.extra[inputs] = found
        return found

    async def after_start(self) -> None:
        await self.intake.start()

    async def reconnected(self) -> None:
        await self.intake.reconnected()

    async def drain(self) -> None:
        await self.intake.stop()

    async def cleanup(self) -> None:
        await super().cleanup()
        self.ner_pool.shutdown(wait=False, cancel_futures=True)


def refuse(error: RequestUnreadable) -> Work:
    """The work of a request that cannot be opened: its error, answered and recorded by ``run``."""
    async def work(_envelope: Envelope, _started: float) -> None:
        raise error
    return work


def handed_out_again(envelope: Envelope, reconnected_at: float) -> bool:
    """A first delivery that may be one a restarted broker handed out again though a live run holds it
    (its consumer state is written behind): accepted before this process last reconnected, or waiting in
    GW_REQ far longer than a request ever does (they wait milliseconds; load is shed past 250 ms)."""
    return envelope.received_at < reconnected_at or time.time() - envelope.received_at > STALE_S


def build_and_warm(redaction: Redaction, salt: bytes) -> ProfileRedactor:
    redactor = build_redactor(redaction, salt)
    warm({"profile": redactor})
    return redactor


def warm(redactors: dict[str, ProfileRedactor]) -> None:
    """Run every profile's scanner once before taking requests: the first request after "ready" must be
    as fast as the next (presidio and spaCy build caches on their first call)."""
    for redactor in set(redactors.values()):
        if redactor.scanner is not None:
            redactor.scanner.find("Warm-up: write to warm.up@example.com or call +1 415 555 0100, Jane Doe in Paris.")


setup = RedactionWorker.setup


if __name__ == "__main__":
    main("redaction")
