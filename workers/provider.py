"""Provider worker: call the planned targets, hand the answer (or its stream) to the output filter.

The only process that reads provider secrets. Calls run concurrently (one task each, bounded); the
process holds each request (``workers/leases.py``) until an output-filter replica confirms it took the
answer, so a provider's answer is never lost to a filter replica that died or to a broker restart. A
stream is handed to ONE filter replica: a request on the filter queue group returns that replica's own
subject, and every piece of the stream goes there, in order (``StreamRelay``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

from nats.aio.msg import Msg

from infra import bootstrap
from infra.derived import Derived
from schemas import subjects
from schemas.config import GatewayConfig, Price, Target
from schemas.envelope import Envelope, Usage
from schemas.errors import DeadlineExceeded, GatewayError, ServiceUnavailable
from schemas.events import EventType, StageAttrs
from schemas.wire import encode, replace
from stages.cache import Entry, question_of, semantic_configured, stream_chunks
from stages.semantic_cache import encode_vector
from stages.timing import with_stage_time
from stages.usage import STAGE, response_usage, served, stream_usage
from workers.app import main
from workers.context import WorkerContext
from workers.health_reporter import HealthReporter
from workers.provider_calls import CallFailed, CallResult, ProviderCaller
from workers.response_cache import ResponseCache
from workers.semantic_index import SemanticIndex
from workers.stream_relay import HAND_OVER_ATTEMPT_S, HAND_OVER_GIVE_UP_S, StreamRelay, Superseded
from workers.worker import StageWorker

log = logging.getLogger("gateway.provider")


class ProviderWorker(StageWorker):
    name = STAGE
    subject = subjects.REQ_CALL

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        live, settings = ctx.live, ctx.settings
        self.live = live
        self.transport = bootstrap.http_transport(settings.max_inflight_calls)
        self.book = Derived(bootstrap.price_book).follow(live)  # the shipped catalog under the config's `prices`
        self.reporter = HealthReporter(lambda: self.runtime.nc, f"{STAGE}-{os.getpid()}")
        self.caller = ProviderCaller(self.config_for, self.transport, self.reporter)
        self.outcomes = self.caller.outcomes
        self.slots = asyncio.Semaphore(settings.max_inflight_calls)
        self.cache = ResponseCache(lambda: self.runtime.nc)
        self.semantic = SemanticIndex(lambda: self.runtime.nc)
        ctx.gauges["provider.semantic_waiting"] = lambda: self.semantic.waiting
        ctx.gauges["provider.semantic_skipped"] = lambda: self.semantic.skipped
        ctx.gauges["provider.semantic_questions"] = lambda: len(self.semantic.index)

    def config_for(self, envelope: Envelope) -> GatewayConfig:
        # the version the request was planned with, so a reload never breaks a request in flight
        return self.live.get(envelope.config_version) or self.live.current

    def prices(self, target: Target) -> Price | None:
        live = self.live
        config = live.current
        provider = config.providers.get(target.provider)
        book = self.book.get(live.version, config)
        return book.price_for(target, provider.type if provider is not None else target.provider)

    def batch_discount(self, envelope: Envelope, provider_name: str) -> float:
        """A batch line's discount at the provider that served it (its ``batch_discount``), else 0."""
        if not envelope.batch_id:
            return 0.0
        provider = self.live.current.providers.get(provider_name)
        return provider.batch_discount if provider is not None else 0.0

    async def on_message(self, msg: Msg) -> None:
        await self.slots.acquire()
        if self.runtime.accept(msg.data, self.work) is None:
            self.slots.release()

    async def work(self, envelope: Envelope, started: float) -> None:
        try:
            if envelope.config_version and self.live.get(envelope.config_version) is None:
                # routing took a new version a few ms before this process did: wait for it, briefly
                await self.live.wait_for(envelope.config_version)
            if envelope.cache_key and envelope.cache == "miss":
                entry = await self.cache.get(envelope.cache_key)
                if entry is not None and entry.fresh(envelope.cache_ttl_s):
                    await self._from_cache(envelope, started, entry)
                    return
            if envelope.cache_scope:
                envelope, entry = await self._semantic(envelope)
                if entry is not None:
                    await self._from_cache(envelope, started, entry)
                    return
            if envelope.stream:
                await self._stream(envelope, started)
            else:
                await self._complete(envelope, started)
        finally:
            self.slots.release()

    async def after_start(self) -> None:
        await self.reporter.start()
        if semantic_configured(self.live.current):
            await self.semantic.started()

    async def reconnected(self) -> None:
        await super().reconnected()
        await self.semantic.reconnected()

    async def cleanup(self) -> None:
        await super().cleanup()
        await self.reporter.stop()
        await self.semantic.stop()
        await self.transport.aclose()

    async def _complete(self, envelope: Envelope, started: float) -> None:
        try:
            result = await self.caller.call(envelope, stream=False)
        except CallFailed as failed:
            await self._failed(envelope, started, failed)
            return
        assert result.response is not None
        usage = response_usage(envelope.body, result.response)
        discount = self.batch_discount(envelope, result.target.provider)
        out = served(envelope, started, result, usage, self.prices, discount, response=result.response)
        await self.hand_over(self._called_event(out, started, result))

    async def _semantic(self, envelope: Envelope) -> tuple[Envelope, Entry | None]:
        """The semantic cache (``stages/semantic_cache.py``), after an exact miss: the answer of a cached
        question the judge rates as the same (the envelope then carries its score), or the envelope with
        the question's vector for the output filter to index the answer under."""
        question = question_of(envelope.body)
        vector = await self.semantic.vector(question) if question is not None else None
        if question is None or vector is None:
            return envelope, None
        if envelope.cache == "miss":
            match = await self.semantic.match(envelope.cache_scope, vector, question, envelope.cache_similarity_min)
            if match is not None:
                entry = await self.cache.get(match.key)
                if entry is not None and entry.fresh(envelope.cache_ttl_s):
                    return replace(envelope, cache_similarity=round(match.similarity, 4)), entry
                self.semantic.index.remove(match.key)  # its answer is gone (purged, expired, dropped)
        return replace(envelope, cache_vector=encode_vector(vector)), None

    async def _from_cache(self, envelope: Envelope, started: float, entry: Entry) -> None:
        """A cached answer, handed to the output filter as the provider's would be (a stream as a stream):
        no call, no cost; ``cache_saved_usd`` is what the call that made it cost."""
        usage = Usage(prompt_tokens=entry.prompt_tokens, completion_tokens=entry.completion_tokens, source="cache")
        out = with_stage_time(envelope, STAGE, started, provider=entry.provider, model_served=entry.model_served,
                              usage=usage, cost_usd="0", cache="hit", cache_age_s=round(entry.age_s(), 3),
                              cache_saved_usd=entry.cost_usd, ttfb_ms=0.0)
        out = self.runtime.event(out, EventType.CACHE_HIT, started, attrs=StageAttrs(
            provider=entry.provider, model=entry.model_served))
        response = {**entry.response, "id": f"chatcmpl-{envelope.request_id}", "created": int(time.time()),
                    "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                              "total_tokens": usage.total_tokens}}
        if not envelope.stream:
            await self.hand_over(replace(out, response=response))
            return
        relay = StreamRelay(self.runtime, out)
        await relay.open()
        try:
            for chunk in stream_chunks(response, response["id"], response["created"]):
                await relay.send(chunk)
            await relay.finish(out, None)
        finally:
            await relay.close()

    async def hand_over(self, envelope: Envelope) -> None:
        """The answer to an output-filter replica, held until one confirms it took it: a provider's
        answer is never lost to a replica that died or a broker restart (no second provider call)."""
        taken = await self.runtime.confirmer.deliver(
            self.ctx.hop(subjects.RESP_FILTER), encode(envelope), attempt_s=HAND_OVER_ATTEMPT_S,
            give_up_s=max(1.0, min(envelope.remaining_s(), HAND_OVER_GIVE_UP_S)))
        if taken is None:
            raise ServiceUnavailable("No output-filter replica took the answer; please retry the request.",
                                     retry_after_s=1.0)

    async def _failed(self, envelope: Envelope, started: float, failed: CallFailed) -> None:
        out = with_stage_time(envelope, STAGE, started, attempts=len(failed.attempts),
                              provider_ms=failed.provider_ms)
        info = failed.error.info()
        out = self.runtime.event(out, EventType.PROVIDER_FAILED, started, status="error", attrs=StageAttrs(
            attempts=[a.as_attrs() for a in failed.attempts], error_code=info.code, status=info.status_code))
        await self.runtime.finish(out, status=info.status_code, error=info)

    def _called_event(self, out: Envelope, started: float, result: CallResult) -> Envelope:
        return self.runtime.event(out, EventType.PROVIDER_CALLED, started, attrs=StageAttrs(
            provider=out.provider, model=out.model_served, attempts=[a.as_attrs() for a in result.attempts],
            provider_ms=round(result.provider_ms, 3)))

    async def _stream(self, envelope: Envelope, started: float) -> None:
        try:
            result = await self.caller.call(envelope, stream=True)
        except CallFailed as failed:
            await self._failed(envelope, started, failed)
            return
        opened = result.stream
        assert opened is not None
        opening = served(envelope, started, result, None, self.prices)
        target = result.target
        relay = StreamRelay(self.runtime, opening)
        try:
            await relay.open()
        except GatewayError:
            self.outcomes.end(target.id, "neutral", result.attempt_ms, target.probe)
            await opened.response.aclose()
            raise
        try:
            error, content = await relay.pump(opened, envelope)
            # The target's outcome: a stream that broke after its first token counts against it (the
            # latency that counts for routing is the time to the first token).
            broke = error is not None and not isinstance(error, DeadlineExceeded | Superseded)
            self.outcomes.end(target.id, "fail" if broke else "ok", result.attempt_ms, target.probe)
            if isinstance(error, Superseded):
                return  # the filter replica already ended the request (a guardrail blocked the stream)
            usage = stream_usage(envelope.body, opened.decoder.state, content)
            result.provider_ms = result.provider_ms + relay.elapsed_ms
            final = served(envelope, started, result, usage, self.prices)
            if error is None:
                final = self._called_event(final, started, result)
            else:
                final = self.runtime.event(final, EventType.PROVIDER_STREAM_FAILED, started, status="error",
                                           attrs=StageAttrs(error_code=error.code, chunks=relay.seq))
            await relay.finish(final, error)
        finally:
            await relay.close()


setup = ProviderWorker.setup


if __name__ == "__main__":
    main("provider")
