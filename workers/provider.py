"""Provider worker: call the planned targets, hand the answer (or its stream) to the output filter.

The only process that reads provider secrets. Calls run concurrently (one task each, bounded);
``+WPI`` keeps a long call from being redelivered. A stream is handed to ONE filter replica: a
request on the filter queue group returns that replica's own subject, and every piece of the stream
goes there, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import httpx
from faststream import AckPolicy
from faststream.nats import NatsBroker

from infra import bootstrap
from infra.prices import price_book
from infra.settings import Settings
from schemas import subjects
from schemas.config import GatewayConfig, Price, Target
from schemas.envelope import Envelope, StreamPiece, Usage
from schemas.errors import DeadlineExceeded, GatewayError, ServiceUnavailable, StreamInterrupted
from schemas.openai import embedding_texts, estimate_tokens, message_text
from stages.cost import cost_usd
from workers.app import Hooks, main
from workers.health import HealthReporter
from workers.provider_calls import CallFailed, CallResult, OpenStream, ProviderCaller
from workers.runtime import StageRuntime, with_stage_time

STAGE = "provider"
Prices = Callable[[Target], Price | None]
HANDSHAKE_TIMEOUT_S = 2.0


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
        self.runtime.ticker.add(envelope.ack_subject)
        try:
            if envelope.stream:
                await self._stream(envelope, started)
            else:
                await self._complete(envelope, started)
        finally:
            self.runtime.ticker.discard(envelope.ack_subject)

    async def _complete(self, envelope: Envelope, started: float) -> None:
        try:
            result = await self.caller.call(envelope, stream=False)
        except CallFailed as failed:
            await self._failed(envelope, started, failed)
            return
        assert result.response is not None
        usage = response_usage(envelope.body, result.response)
        out = served(envelope, started, result, usage, self.prices, response=result.response)
        await self.runtime.forward(subjects.RESP_FILTER, self._called_event(out, started, result))

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

    async def _handshake(self, envelope: Envelope) -> str:
        try:
            answer = await self.runtime.nc.request(subjects.RESP_FILTER, envelope.model_dump_json().encode(),
                                                   timeout=HANDSHAKE_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - no filter replica answered
            raise ServiceUnavailable("No output-filter replica is available to take the stream.") from None
        return answer.data.decode()

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
        try:
            subject = await self._handshake(opening)
        except GatewayError:
            self.outcomes.end(target.id, "neutral", result.attempt_ms, target.probe)
            await opened.response.aclose()
            raise
        pump = StreamPump(self.runtime, subject, envelope.request_id)
        error, content = await pump.run(opened, envelope)
        # The target's outcome: a stream that broke after its first token counts against it (the
        # latency that counts for routing is the time to the first token).
        broke = error is not None and not isinstance(error, DeadlineExceeded)
        self.outcomes.end(target.id, "fail" if broke else "ok", result.attempt_ms, target.probe)
        state = opened.decoder.state
        if state.prompt_tokens is not None:
            usage = Usage(prompt_tokens=state.prompt_tokens, completion_tokens=state.completion_tokens or 0)
        else:
            usage = Usage(prompt_tokens=prompt_estimate(envelope.body), completion_tokens=estimate_tokens(content),
                          source="estimated")
        elapsed_provider = result.provider_ms + pump.elapsed_ms
        result.provider_ms = elapsed_provider
        final = served(envelope, started, result, usage, self.prices)
        if error is None:
            final = self._called_event(final, started, result)
        else:
            final = self.runtime.event(final, "provider.stream_failed", started, status="error",
                                       attrs={"error_code": error.code, "chunks": pump.seq})
        await pump.send(final=final, error=error)


class StreamPump:
    """Relays one provider stream to its filter replica as ordered ``StreamPiece`` messages."""

    def __init__(self, runtime: StageRuntime, subject: str, request_id: str) -> None:
        self.runtime = runtime
        self.subject = subject
        self.request_id = request_id
        self.seq = 0
        self.elapsed_ms = 0.0

    async def send(self, chunk: dict[str, Any] | None = None, final: Envelope | None = None,
                   error: GatewayError | None = None) -> None:
        piece = StreamPiece(request_id=self.request_id, seq=self.seq, chunk=chunk, final=final,
                            error=error.info() if error else None)
        self.seq += 1
        await self.runtime.nc.publish(self.subject, piece.model_dump_json().encode())

    async def run(self, opened: OpenStream, envelope: Envelope) -> tuple[GatewayError | None, str]:
        """Pump until the provider finishes; returns the error that ended it early, if any, and the text."""
        started = time.perf_counter()
        text: list[str] = []

        async def relay(chunks: list[dict[str, Any]]) -> None:
            for chunk in chunks:
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        text.append(content)
                await self.send(chunk=chunk)

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


async def setup(broker: NatsBroker, settings: Settings) -> Hooks:
    live = await bootstrap.live_config(settings, STAGE)
    client: httpx.AsyncClient = bootstrap.http_client(settings.max_inflight_calls)
    runtime = StageRuntime(broker, STAGE, settings.ack_wait_s)
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
    tasks: set[asyncio.Task[None]] = set()

    async def work(envelope: Envelope, started: float) -> None:
        if envelope.config_version and live.get(envelope.config_version) is None:
            # routing took a new version a few ms before this process did: wait for it, briefly
            await live.wait_for(envelope.config_version)
        await stage.work(envelope, started)

    async def guarded(data: bytes) -> None:
        try:
            await runtime.run(data, work)
        finally:
            slots.release()

    @broker.subscriber(subjects.REQ_CALL, queue=subjects.QUEUE_GROUPS[subjects.REQ_CALL],
                       no_reply=True, ack_policy=AckPolicy.MANUAL)
    async def on_request(data: bytes) -> None:
        await slots.acquire()
        task = asyncio.create_task(guarded(data))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def cleanup() -> None:
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        await runtime.ticker.stop()
        await reporter.stop()
        await live.stop()
        await client.aclose()

    return Hooks(after_start=reporter.start, cleanup=cleanup)


if __name__ == "__main__":
    main("provider", setup)
