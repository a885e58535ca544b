"""Calling providers: one attempt over HTTP, and the attempt loop (retries with backoff, fallbacks).

Adapters (pure, ``stages.providers``) build the HTTP calls and translate bodies; this module does the
I/O with the worker's one shared HTTP transport and maps transport failures to typed errors. It sends
httpx requests straight to the transport, without an ``httpx.AsyncClient``: the client's per-call work
(URL merging, cookies, auth and redirect handling, none of which a provider call uses) was ≈ 9 % of a
stage process's CPU under load.
A stream counts as opened only once it has produced a chunk with a payload (content, a tool call, a
finish reason): a failure before that is retried or falls back transparently.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import orjson

from schemas.config import BedrockProvider, GatewayConfig, ProviderConfig
from schemas.envelope import Envelope
from schemas.errors import (
    AllTargetsFailed,
    ConfigInvalid,
    DeadlineExceeded,
    GatewayError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    StreamInterrupted,
)
from schemas.events import CallAttempt
from schemas.routing import PlannedTarget
from schemas.secret_refs import variable_of
from schemas.tracing import attempt_traceparent, tracing_wanted
from stages.health import Outcome, classify
from stages.providers.base import ProviderAdapter, StreamDecoder, StreamParser
from stages.providers.embeddings import embeddings_request, embeddings_response
from stages.providers.registry import adapter_for
from stages.retry import RetryBudget, batch_backoff_s

log = logging.getLogger("gateway.provider")


def resolve_secret(ref: str | None, where: str) -> str | None:
    """``env:NAME`` → the variable's value. Only the provider stage ever calls this (``gateway up`` gives
    the referenced variables to its processes only). A variable that is not set, or empty, is an error
    naming it (``where``: the config path): this target cannot serve, the next one may."""
    if ref is None:
        return None
    name = variable_of(ref)
    value = os.environ.get(name)
    if not value:
        error = ConfigInvalid(
            f"{where} references the environment variable {name}, which is not set in this provider process; "
            "set it and restart `gateway up` (a process keeps the environment it started with: a config "
            "change cannot give it a new variable)", code=SECRET_MISSING)
        if where not in _missing_logged:  # the caller sees only the code: say it once in the log
            _missing_logged.add(where)
            log.error("%s", error.message)
        raise error
    return value


_missing_logged: set[str] = set()


def provider_credentials(provider: ProviderConfig, name: str) -> dict[str, str] | None:
    """Credentials beyond one API key (AWS keys for SigV4), resolved; None for other providers."""
    if not isinstance(provider, BedrockProvider):
        return None
    resolved = {key: resolve_secret(getattr(provider, key), f"providers.{name}.{key}")
                for key in ("access_key_id", "secret_access_key", "session_token")}
    return {k: v for k, v in resolved.items() if v}


@dataclass(frozen=True)
class Attempt:
    target: str
    status: int
    code: str
    retryable: bool
    ms: float
    upstream_status: int | None = None  # what the provider answered; None: it never answered
    at: float = 0.0  # when the call started (wall clock): its span's start

    def as_attrs(self) -> CallAttempt:
        return CallAttempt(target=self.target, status=self.status, code=self.code, ms=round(self.ms, 3),
                           upstream_status=self.upstream_status, at=self.at)


@dataclass
class OpenStream:
    response: httpx.Response
    raw: AsyncIterator[bytes]
    parser: StreamParser
    decoder: StreamDecoder
    first_chunks: list[dict[str, Any]]


@dataclass
class CallResult:
    target: PlannedTarget
    attempts: list[Attempt]
    provider_ms: float  # every attempt's time, summed (after call(): the whole chain's, backoff waits included)
    ttfb_ms: float  # after call(): from the first attempt's start to the answer or first token
    response: dict[str, Any] | None = None
    stream: OpenStream | None = None
    attempt_ms: float = 0.0  # the answering attempt's own time: the target's latency for routing


@dataclass
class CallFailed(Exception):
    error: GatewayError
    attempts: list[Attempt] = field(default_factory=list)
    provider_ms: float = 0.0


def has_payload(chunk: dict[str, Any]) -> bool:
    if chunk.get("usage"):
        return True
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or choice.get("finish_reason"):
            return True
    return False


class Outcomes(Protocol):
    """Where each attempt's outcome goes (``workers.health_reporter.HealthReporter``): the live per-target
    latency, in-flight counts and failure windows behind smart routing and circuit breakers."""

    def begin(self, target_id: str) -> None: ...

    def end(self, target_id: str, outcome: Outcome, ms: float, probe: bool = False) -> None: ...


class NoOutcomes:
    def begin(self, target_id: str) -> None:
        pass

    def end(self, target_id: str, outcome: Outcome, ms: float, probe: bool = False) -> None:
        pass


# Raised without a provider status, meaning "this target cannot serve this request": try the next.
SECRET_MISSING = "provider_secret_missing"
_CANNOT_SERVE = {"provider_unsupported", SECRET_MISSING}

ConfigFor = Callable[[Envelope], GatewayConfig]
"""The config a request was planned with (hot reload: an in-flight request keeps its version)."""


def moves_on(error: GatewayError, target: PlannedTarget) -> bool:
    """Whether a failed attempt lets the request go on (retry the target if the error is retryable,
    else the next target) rather than end with this error.

    Transport failures always do; a provider status does when it is in the node's ``on_status_codes``;
    a status outside them (e.g. a 400, a context-length error) ends the request: the caller must fix it."""
    status = error.upstream_status
    if status is None:
        return error.retryable or error.code in _CANNOT_SERVE
    return status in target.on_status_codes


USER_AGENT = "llm-gateway"
"""Sent with every provider call (an adapter's own ``user-agent`` wins): some proxies in front of
providers refuse requests without one."""


@functools.lru_cache(maxsize=1024)
def parsed_url(url: str) -> httpx.URL:
    """Provider URLs repeat: parse each once."""
    return httpx.URL(url)


class ProviderCaller:
    def __init__(self, config: ConfigFor | GatewayConfig, transport: httpx.AsyncBaseTransport,
                 outcomes: Outcomes | None = None) -> None:
        if isinstance(config, GatewayConfig):
            fixed = config

            def config_for(_envelope: Envelope) -> GatewayConfig:
                return fixed

            self.config_for: ConfigFor = config_for
        else:
            self.config_for = config
        self.transport = transport
        self.outcomes = outcomes or NoOutcomes()
        self.traces_exported = tracing_wanted(os.environ)  # the sink exports the call spans (trace_export.py)

    async def call(self, envelope: Envelope, *, stream: bool) -> CallResult:
        """Try the plan's targets in order. A batch line that every target refused with 429 waits
        (``batch_backoff_s``) and tries the plan again, as long as its deadline allows: it backs off
        rather than fail (its waits are the provider's time, not the gateway's)."""
        attempts: list[Attempt] = []
        provider_ms = 0.0
        for round_number in itertools.count(1):
            try:
                result = await self._call_plan(envelope, stream=stream)
            except CallFailed as failed:
                attempts += failed.attempts
                provider_ms += failed.provider_ms
                if not envelope.batch_id or not isinstance(failed.error, RateLimited):
                    raise CallFailed(failed.error, attempts, provider_ms) from None
                wait = batch_backoff_s(round_number, failed.error.retry_after_s)
                if wait >= envelope.remaining_s() - 1.0:
                    raise CallFailed(failed.error, attempts, provider_ms) from None
                log.info("batch line %s: every target rate limited; trying again in %.1fs", envelope.request_id,
                         wait)
                await asyncio.sleep(wait)
                provider_ms += wait * 1000
                continue
            if attempts:
                result.attempts = attempts + result.attempts
                result.provider_ms += provider_ms
            return result
        raise AssertionError("unreachable")

    async def _call_plan(self, envelope: Envelope, *, stream: bool) -> CallResult:
        config = self.config_for(envelope)
        breaker = config.circuit_breaker
        budget = RetryBudget()
        attempts: list[Attempt] = []
        last_error: GatewayError | None = None
        provider_ms = 0.0
        chain_started = time.perf_counter()
        for target in envelope.plan:
            provider = config.providers[target.provider]
            adapter = adapter_for(provider)
            per_target = target.retry.attempts_per_target
            for number in range(1, per_target + 1):
                remaining = envelope.remaining_s()
                if remaining <= 0:
                    raise CallFailed(self._deadline(envelope, attempts), attempts, provider_ms)
                started, started_at = time.perf_counter(), time.time()
                self.outcomes.begin(target.id)
                try:
                    result = await self._attempt(envelope, target, provider, adapter, stream, remaining,
                                                 attempt_no=len(attempts))
                except GatewayError as exc:
                    ms = (time.perf_counter() - started) * 1000
                    self.outcomes.end(target.id, classify(exc.upstream_status or 0, exc.code, breaker), ms,
                                      target.probe)
                    provider_ms += ms
                    last_error = exc
                    attempts.append(Attempt(target.id, exc.status_code, exc.code or "", exc.retryable, ms,
                                            exc.upstream_status, started_at))
                    if envelope.remaining_s() <= 0:
                        raise CallFailed(self._deadline(envelope, attempts), attempts, provider_ms) from None
                    if not moves_on(exc, target):
                        raise CallFailed(exc, attempts, provider_ms) from None
                    if not exc.retryable or number == per_target:
                        break
                    delay = budget.delay_before_retry(target.retry, number, exc.retry_after_s, envelope.remaining_s())
                    if delay is None:
                        break
                    waited = time.perf_counter()
                    await asyncio.sleep(delay)
                    # a wait the provider asked for (Retry-After) or its errors caused is the provider's
                    # time, not the gateway's: it is neither overhead nor a queue (ingress's overload rule)
                    provider_ms += (time.perf_counter() - waited) * 1000
                    continue
                except BaseException:  # cancelled, or a bug: the call is no longer in flight either way
                    self.outcomes.end(target.id, "neutral", (time.perf_counter() - started) * 1000, target.probe)
                    raise
                if result.stream is None:
                    self.outcomes.end(target.id, "ok", result.provider_ms, target.probe)
                # else: the stream's outcome is reported when it ends (ProviderWorker)
                provider_ms += result.provider_ms
                attempts.append(Attempt(target.id, 200, "", False, result.provider_ms, 200, started_at))
                result.attempts = attempts
                result.attempt_ms = result.provider_ms
                result.provider_ms = provider_ms
                result.ttfb_ms = (time.perf_counter() - chain_started) * 1000
                return result
        summary = "; ".join(f"{a.target}: {a.status} {a.code}" for a in attempts) or "no targets"
        message = f"All {len(envelope.plan)} target(s) failed after {len(attempts)} attempt(s): {summary}"
        if attempts and all(a.upstream_status == 429 for a in attempts):
            # Every target is rate limiting: say so, with when to come back, rather than a 5xx.
            retry_after = last_error.retry_after_s if last_error is not None else None
            raise CallFailed(RateLimited(message, retry_after_s=retry_after), attempts, provider_ms)
        raise CallFailed(AllTargetsFailed(message), attempts, provider_ms)

    @staticmethod
    def _deadline(envelope: Envelope, attempts: list[Attempt]) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"The request deadline of {envelope.deadline - envelope.received_at:.1f}s passed "
            f"after {len(attempts)} provider attempt(s)."
        )

    async def _attempt(self, envelope: Envelope, target: PlannedTarget, provider: ProviderConfig,
                       adapter: ProviderAdapter, stream: bool, remaining: float, *, attempt_no: int = 0) -> CallResult:
        embeddings = envelope.endpoint == "embeddings"
        api_key = resolve_secret(provider.api_key, f"providers.{target.provider}.api_key")
        if embeddings:
            call = embeddings_request(provider, target.model, envelope.body, api_key=api_key)
        else:
            credentials = provider_credentials(provider, target.provider)
            call = adapter.to_provider_request(provider, target.model, envelope.body, stream=stream,
                                               api_key=api_key, credentials=credentials)
        headers = {"user-agent": USER_AGENT, **call.headers, "content-type": "application/json"}
        traceparent = attempt_traceparent(envelope.request_id, envelope.traceparent, attempt_no,
                                          exported=self.traces_exported)
        if traceparent is not None:  # the provider's own spans join the caller's trace (under this call's span)
            headers["traceparent"] = traceparent
        read_timeout = min(provider.read_timeout_s, remaining, target.timeout_s or remaining)
        timeout = httpx.Timeout(read_timeout, connect=min(provider.connect_timeout_s, read_timeout))
        # ``content``: the exact bytes an adapter signed (SigV4); never re-serialise them
        content = call.content if call.content is not None else orjson.dumps(call.json) if call.json is not None \
            else None
        started = time.perf_counter()
        name = target.provider
        try:
            request = httpx.Request(call.method, parsed_url(call.url), headers=headers, content=content,
                                    extensions={"timeout": timeout.as_dict()})
            response = await self.transport.handle_async_request(request)
            response.request = request
        except httpx.TimeoutException:
            waited = read_timeout
            raise ProviderTimeout(f"{name} did not answer within {waited:.1f}s") from None
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"could not reach {name}: {type(exc).__name__}: {exc}") from None
        try:
            if response.status_code >= 400:
                body = await response.aread()
                error = adapter.classify_error(response.status_code, response.headers, body)
                error.upstream_status = response.status_code
                raise error
            if not stream:
                body = await response.aread()
                ms = (time.perf_counter() - started) * 1000
                try:
                    data = orjson.loads(body)
                except orjson.JSONDecodeError:
                    raise ProviderError(f"{name} returned a body that is not JSON", retryable=True) from None
                if embeddings:
                    translated = embeddings_response(provider, data, model=target.model)
                else:
                    translated = adapter.from_provider_response(data, model=target.model,
                                                                request_id=envelope.request_id)
                return CallResult(target, [], ms, ms, response=translated)
            opened = await self._open_stream(response, adapter, target, envelope.request_id)
            ms = (time.perf_counter() - started) * 1000
            return CallResult(target, [], ms, ms, stream=opened)
        except httpx.TimeoutException:
            await response.aclose()
            raise ProviderTimeout(f"{name} stopped sending within the read timeout") from None
        except httpx.TransportError as exc:
            await response.aclose()
            raise StreamInterrupted(f"{name} closed the connection: {type(exc).__name__}", retryable=True) from None
        except BaseException:
            await response.aclose()
            raise

    @staticmethod
    async def _open_stream(response: httpx.Response, adapter: ProviderAdapter, target: PlannedTarget,
                           request_id: str) -> OpenStream:
        parser = adapter.stream_parser()
        decoder = adapter.stream_decoder(model=target.model, request_id=request_id)
        raw = response.aiter_raw()
        first: list[dict[str, Any]] = []
        async for data in raw:
            for event in parser.feed(data):
                first.extend(decoder.feed(event))
            if decoder.state.finished or any(has_payload(c) for c in first):
                return OpenStream(response, raw, parser, decoder, first)
        for event in parser.flush():
            first.extend(decoder.feed(event))
        if decoder.state.finished or any(has_payload(c) for c in first):
            return OpenStream(response, raw, parser, decoder, first)
        raise StreamInterrupted(f"{target.provider} ended the stream before the first token", retryable=True)
