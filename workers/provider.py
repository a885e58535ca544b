"""Provider worker: call the planned targets, hand the answer (or its stream) to the output filter.

The only process that reads provider secrets. Calls run concurrently (one task each, bounded); the
process holds each request (``workers/leases.py``) until an output-filter replica confirms it took the
answer, so a provider's answer is never lost to a filter replica that died or to a broker restart. A
stream is handed to ONE filter replica: a request on the filter queue group returns that replica's own
subject, and every piece of the stream goes there, in order (``StreamRelay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
from faststream import AckPolicy

from infra import bootstrap
from infra.confirm import NoResponders
from infra.prices import price_book
from schemas import control, subjects
from schemas.config import GatewayConfig, Price, Target
from schemas.control import StreamAck
from schemas.envelope import Envelope, StreamPiece, Usage
from schemas.errors import DeadlineExceeded, GatewayError, ServiceUnavailable, StreamInterrupted
from schemas.openai import embedding_texts, estimate_tokens, message_text
from stages.cost import cost_usd
from workers.app import Hooks, main
from workers.context import WorkerContext
from workers.health import HealthReporter
from workers.provider_calls import CallFailed, CallResult, OpenStream, ProviderCaller
from workers.runtime import StageRuntime, with_stage_time

STAGE = "provider"
log = logging.getLogger("gateway.provider")
Prices = Callable[[Target], Price | None]
HAND_OVER_ATTEMPT_S = 2.0
"""How long a filter replica has to confirm it took an answer before it is offered again (it confirms
on receipt: only a replica that died, or a message lost in a broker restart, misses this)."""
HAND_OVER_GIVE_UP_S = 30.0
PING_EVERY_S = 0.5


def prompt_estimate(body: dict[str, Any]) -> int:
    texts = [message_text(m) for m in body.get("messages") or [] if isinstance(m, dict)] + embedding_texts(body)
    return estimate_tokens("".join(texts))


def cached_tokens(usage: dict[str, Any]) -> int:
    details = usage.get("prompt_tokens_details")
    return int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0


def response_usage(body: dict[str, Any], response: dict[str, Any]) -> Usage:
    usage = response.get("usage")
    if isinstance(usage, dict) and "prompt_tokens" in usage:
        return Usage(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0),
                     cached_prompt_tokens=cached_tokens(usage), source="provider")
    text = "".join(str((c.get("message") or {}).get("content") or "") for c in response.get("choices") or [])
    return Usage(prompt_tokens=prompt_estimate(body), completion_tokens=estimate_tokens(text), source="estimated")


def served(envelope: Envelope, started: float, result: CallResult, usage: Usage | None, prices: Prices,
           **update: Any) -> Envelope:
    target = result.target
    cost = cost_usd(prices(target.target), usage.prompt_tokens, usage.completion_tokens,
                    usage.cached_prompt_tokens) if usage else None
    return with_stage_time(
        envelope, STAGE, started,
        provider=target.provider,
        route_path=target.path,
        model_served=(result.response or {}).get("model") or target.model,
        attempts=len(result.attempts),
        provider_ms=result.provider_ms,
        ttfb_ms=result.ttfb_ms,
        usage=usage,
        cost_usd=None if cost is None else str(cost),
        **update,
    )


class ProviderStage:
    def __init__(self, runtime: StageRuntime, caller: ProviderCaller, prices: Prices) -> None:
        self.runtime = runtime
        self.caller = caller
        self.prices = prices
        self.outcomes = caller.outcomes

    async def work(self, envelope: Envelope, started: float) -> None:
        if envelope.stream:
            await self._stream(envelope, started)
        else:
            await self._complete(envelope, started)

    async def _complete(self, envelope: Envelope, started: float) -> None:
        try:
            result = await self.caller.call(envelope, stream=False)
        except CallFailed as failed:
            await self._failed(envelope, started, failed)
            return
        assert result.response is not None
        usage = response_usage(envelope.body, result.response)
        out = served(envelope, started, result, usage, self.prices, response=result.response)
        await self.hand_over(self._called_event(out, started, result))

    async def hand_over(self, envelope: Envelope) -> None:
        """The answer to an output-filter replica, held until one confirms it took it: a provider's
        answer is never lost to a replica that died or a broker restart (no second provider call)."""
        taken = await self.runtime.confirmer.deliver(
            subjects.RESP_FILTER, envelope.model_dump_json().encode(), attempt_s=HAND_OVER_ATTEMPT_S,
            give_up_s=max(1.0, min(envelope.remaining_s(), HAND_OVER_GIVE_UP_S)))
        if taken is None:
            raise ServiceUnavailable("No output-filter replica took the answer; please retry the request.",
                                     retry_after_s=1.0)

    async def _failed(self, envelope: Envelope, started: float, failed: CallFailed) -> None:
        out = with_stage_time(envelope, STAGE, started, attempts=len(failed.attempts),
                              provider_ms=failed.provider_ms)
        info = failed.error.info()
        out = self.runtime.event(out, "provider.failed", started, status="error", attrs={
            "attempts": [a.as_dict() for a in failed.attempts], "error_code": info.code,
            "status": info.status_code})
        await self.runtime.finish(out, status=info.status_code, error=info)

    def _called_event(self, out: Envelope, started: float, result: CallResult) -> Envelope:
        return self.runtime.event(out, "provider.called", started, attrs={
            "provider": out.provider, "model": out.model_served, "attempts": [a.as_dict() for a in result.attempts],
            "provider_ms": round(result.provider_ms, 3)})

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
            state = opened.decoder.state
            if state.prompt_tokens is not None:
                usage = Usage(prompt_tokens=state.prompt_tokens, completion_tokens=state.completion_tokens or 0)
            else:
                usage = Usage(prompt_tokens=prompt_estimate(envelope.body),
                              completion_tokens=estimate_tokens(content), source="estimated")
            result.provider_ms = result.provider_ms + relay.elapsed_ms
            final = served(envelope, started, result, usage, self.prices)
            if error is None:
                final = self._called_event(final, started, result)
            else:
                final = self.runtime.event(final, "provider.stream_failed", started, status="error",
                                           attrs={"error_code": error.code, "chunks": relay.seq})
            await relay.finish(final, error)
        finally:
            await relay.close()


class Superseded(GatewayError):
    """The filter replica already ended the request (a guardrail blocked the stream): stop pumping."""


class StreamRelay:
    """One provider stream to the output filter, as ordered ``StreamPiece`` messages, kept whole.

    The pieces go to the one filter replica that took the stream (its own subject), so a value split
    across chunks meets one hold-back window. Every piece sent is kept until the filter holds the end
    of the request. Every ``PING_EVERY_S`` the relay asks the replica how far it got (``StreamAck``):
    pieces a broker restart dropped are sent again; a replica that is gone (no responders) or does not
    know the stream is replaced by another, which is given every piece from the first (it produces the
    same chunks; ingress drops those it already relayed). The last piece is confirmed: from then on the
    filter replica answers, records and acks the request, and this stage lets go of it.
    """

    def __init__(self, runtime: StageRuntime, opening: Envelope) -> None:
        self.runtime = runtime
        self.opening = opening
        self.request_id = opening.request_id
        self.subject = ""
        self.pieces: list[bytes] = []
        self.seq = 0
        self.elapsed_ms = 0.0
        self.replicas = 0
        self.taken = False
        self._pinger: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """A filter replica takes the stream: asked again while none answers, up to the deadline."""
        answer = await self.runtime.confirmer.deliver(
            subjects.RESP_FILTER_OPEN, self.opening.model_dump_json().encode(), attempt_s=1.0,
            give_up_s=max(1.0, min(self.opening.remaining_s(), HAND_OVER_GIVE_UP_S)))
        if answer is None:
            raise ServiceUnavailable("No output-filter replica is available to take the stream.", retry_after_s=1.0)
        self.subject = answer.data.decode()
        self.replicas += 1
        if self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_loop())

    async def close(self) -> None:
        pinger, self._pinger = self._pinger, None
        if pinger is not None:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pinger

    async def send(self, chunk: dict[str, Any]) -> None:
        piece = StreamPiece(request_id=self.request_id, seq=self.seq, chunk=chunk)
        self.seq += 1
        data = piece.model_dump_json().encode()
        self.pieces.append(data)
        await self.runtime.nc.publish(self.subject, data)

    async def _replace(self) -> None:
        """The replica is gone or lost the stream: another one takes it from the first piece."""
        log.info("stream %s: output-filter replica %s lost; replaying %d pieces to another",
                 self.request_id, self.subject, len(self.pieces))
        await self.open()
        for data in self.pieces:
            await self.runtime.nc.publish(self.subject, data)

    async def _catch_up(self, ack: StreamAck) -> None:
        if ack.next is None:
            await self._replace()
        else:
            for data in self.pieces[ack.next:]:
                await self.runtime.nc.publish(self.subject, data)

    async def _ping_loop(self) -> None:
        while not self.taken:
            await asyncio.sleep(PING_EVERY_S)
            try:
                answer = await self.runtime.confirmer.request(
                    self.subject, self.request_id.encode(), {control.KIND: control.PING}, timeout_s=PING_EVERY_S * 2)
                ack = StreamAck.model_validate_json(answer.data)
                if ack.taken:
                    self.taken = True
                    return
                await self._catch_up(ack)
            except NoResponders:
                await self._replace()
            except TimeoutError:
                continue  # a busy replica, or a broker restart: the next ping tells
            except GatewayError:
                return  # no replica at all until the deadline: the last piece's delivery reports it

    async def pump(self, opened: OpenStream, envelope: Envelope) -> tuple[GatewayError | None, str]:
        """Relay until the provider finishes; returns the error that ended it early, if any, and the text."""
        started = time.perf_counter()
        text: list[str] = []

        async def relay(chunks: list[dict[str, Any]]) -> None:
            if self.taken:
                raise Superseded("the output filter ended the request")
            for chunk in chunks:
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        text.append(content)
                await self.send(chunk)

        error: GatewayError | None = None
        try:
            await relay(opened.first_chunks)
            async with asyncio.timeout(max(0.0, envelope.remaining_s())):
                async for data in opened.raw:
                    for event in opened.parser.feed(data):
                        await relay(opened.decoder.feed(event))
                for event in opened.parser.flush():
                    await relay(opened.decoder.feed(event))
            if not opened.decoder.state.finished:
                error = StreamInterrupted("The provider closed the stream before it finished.")
        except TimeoutError:
            error = DeadlineExceeded("The request deadline passed while the provider was streaming.")
        except GatewayError as exc:
            error = exc
        except httpx.HTTPError as exc:
            error = StreamInterrupted(f"The provider stream broke: {type(exc).__name__}.")
        finally:
            with contextlib.suppress(Exception):
                await opened.response.aclose()
        self.elapsed_ms = (time.perf_counter() - started) * 1000
        return error, "".join(text)

    async def finish(self, final: Envelope, error: GatewayError | None) -> None:
        """The last piece, until the filter replica holding the stream confirms it took the end."""
        piece = StreamPiece(request_id=self.request_id, seq=self.seq, final=final,
                            error=error.info() if error else None)
        self.seq += 1
        data = piece.model_dump_json().encode()
        give_up = time.monotonic() + max(1.0, min(final.remaining_s() + 5.0, HAND_OVER_GIVE_UP_S))
        while not self.taken:
            try:
                answer = await self.runtime.confirmer.request(self.subject, data, timeout_s=HAND_OVER_ATTEMPT_S)
                ack = StreamAck.model_validate_json(answer.data)
                if ack.taken:
                    self.taken = True
                    return
                await self._catch_up(ack)  # pieces went missing, or the replica lost the stream
            except NoResponders:
                await self._replace()
            except TimeoutError:
                pass
            if time.monotonic() > give_up:
                raise ServiceUnavailable("No output-filter replica took the end of the stream.")


async def setup(ctx: WorkerContext) -> Hooks:
    live, settings = ctx.live, ctx.settings
    client: httpx.AsyncClient = bootstrap.http_client(settings.max_inflight_calls)
    runtime = StageRuntime(ctx, STAGE)
    book = [price_book(live.current)]  # rebuilt when the config changes (its `prices` may)
    live.on_change(lambda config, _version: book.__setitem__(0, price_book(config)))
    reporter = HealthReporter(lambda: runtime.nc, f"{STAGE}-{os.getpid()}")

    def config_for(envelope: Envelope) -> GatewayConfig:
        # the version the request was planned with, so a reload never breaks a request in flight
        return live.get(envelope.config_version) or live.current

    def prices(target: Target) -> Price | None:
        provider = live.current.providers.get(target.provider)
        return book[0].price_for(target, provider.type if provider is not None else target.provider)

    stage = ProviderStage(runtime, ProviderCaller(config_for, client, reporter), prices)
    slots = asyncio.Semaphore(settings.max_inflight_calls)

    async def work(envelope: Envelope, started: float) -> None:
        try:
            if envelope.config_version and live.get(envelope.config_version) is None:
                # routing took a new version a few ms before this process did: wait for it, briefly
                await live.wait_for(envelope.config_version)
            await stage.work(envelope, started)
        finally:
            slots.release()

    @ctx.broker.subscriber(subjects.REQ_CALL, queue=subjects.QUEUE_GROUPS[subjects.REQ_CALL],
                           no_reply=True, ack_policy=AckPolicy.MANUAL)
    async def on_request(data: bytes) -> None:
        await slots.acquire()
        if runtime.accept(data, work) is None:
            slots.release()

    async def cleanup() -> None:
        await runtime.drain()
        await reporter.stop()
        await client.aclose()

    return Hooks(after_start=reporter.start, cleanup=cleanup)


if __name__ == "__main__":
    main("provider")
