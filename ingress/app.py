"""The ingress ASGI app: routes, authentication, publishing, and relaying answers (JSON or SSE).

The config is live (hot reload, ``ingress/config_view.py``): keys, the models lists, body limits and
timeouts follow the current version; a request keeps the view it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from typing import Any

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infra import nats_connect
from ingress.admission import ChainProbe, Overload
from ingress.anthropic_surface import count_tokens, parse_count_tokens_request
from ingress.asgi import (
    SSE_HEADERS,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    send_error,
    send_json,
)
from ingress.config_view import ConfigOpener, ConfigSource, ConfigView, StaticConfig, ViewCache
from ingress.metadata import RequestMetadata, read_metadata
from ingress.records import RecordOutbox
from ingress.replies import Pending, ReplyWaiter
from ingress.surfaces import ANTHROPIC, EMBEDDINGS, OPENAI, Surface
from schemas import subjects
from schemas.config import ApiKey, GatewayConfig, hash_api_key
from schemas.envelope import Envelope, Reply
from schemas.errors import (
    AuthenticationFailed,
    DeadlineExceeded,
    ErrorInfo,
    GatewayError,
    InternalError,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
)
from schemas.events import RequestCompleted
from schemas.ids import uuid7
from schemas.wire import encode

log = logging.getLogger("gateway.ingress")

# How long past the deadline ingress still waits for the chain's own timeout answer.
DEADLINE_GRACE_S = 1.0
PUBLISH_ATTEMPTS = 2
PUBLISH_TIMEOUT_S = 3.0
# The stages a request travels: /readyz and admission check that each has a live replica.
STAGES = ("redaction", "policy", "routing", "provider", "output_filter")


_ANTHROPIC_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def check_anthropic_version(scope: Scope) -> None:
    """Anthropic clients send ``anthropic-version``; the SDKs always do. Absent is accepted (the
    gateway speaks one version of the API); a malformed one is refused as Anthropic would."""
    version = header(scope, b"anthropic-version")
    if version is not None and not _ANTHROPIC_VERSION.match(version):
        raise InvalidRequest(f"anthropic-version: invalid value {version!r}; expected a date such as 2023-06-01.",
                             param="anthropic-version", code="invalid_anthropic_version")


class Ingress:
    def __init__(self, config: GatewayConfig | ConfigSource | None, nats_url: str, ingress_id: str | None = None,
                 *, open_config: ConfigOpener | None = None, overload: Overload | None = None,
                 probe_every_s: float = 2.0) -> None:
        """``config``: a fixed config or a live source; or ``None`` with ``open_config``, which opens the
        live source at lifespan startup (on the server's event loop) and which ingress stops at shutdown."""
        if config is None and open_config is None:
            raise ValueError("Ingress needs a config or open_config")
        self.views = ViewCache(StaticConfig(config) if isinstance(config, GatewayConfig) else config)
        self._open_config = open_config
        self.nats_url = nats_url
        self.ingress_id = ingress_id or uuid7().replace("-", "")
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self.waiter = ReplyWaiter(self.ingress_id, lambda: self.nc)
        self.probe = ChainProbe(lambda: self._nc, STAGES, every_s=probe_every_s)
        self.overload = overload or Overload()
        self.records = RecordOutbox(lambda: self._nc)
        self._announcer: asyncio.Task[None] | None = None

    def view(self) -> ConfigView:
        """What ingress derives from the current config version (rebuilt once per version)."""
        return self.views.get()

    @property
    def config(self) -> GatewayConfig:
        return self.views.get().config

    @property
    def keys(self) -> dict[str, ApiKey]:
        return self.views.get().keys

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def nc(self) -> NatsClient:
        assert self._nc is not None, "ingress not started"
        return self._nc

    async def startup(self) -> None:
        if self._open_config is not None and self.views.source is None:
            # before the server accepts requests: never serve a stale file config
            self.views.source = await self._open_config()
        self._nc = await nats_connect.connect(self.nats_url, f"ingress-{self.ingress_id}")
        self._js = self._nc.jetstream()
        await self._nc.subscribe(self.waiter.wildcard, cb=self.waiter.on_message)
        await self._nc.subscribe(subjects.LOAD_REPORT, cb=self._on_load)
        await self._nc.flush()
        await self.probe.probe()
        self.probe.start()
        self.records.start()
        self._announcer = asyncio.create_task(self._announce_ready())

    async def _on_load(self, msg: Msg) -> None:
        try:
            report = orjson.loads(msg.data)
            self.overload.report(int(report["pid"]), float(report["lag_ms"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.debug("bad load report %.100r", msg.data)

    async def _announce_ready(self) -> None:
        """Tell ``gateway up`` (``gw.ctl.ready``) once a request can travel the whole chain from here."""
        while await self.probe.fresh(0.2):
            await asyncio.sleep(0.2)
        await self.nc.publish(subjects.CTL_READY, orjson.dumps({"name": "ingress", "process": "ingress",
                                                                  "pid": os.getpid(), "id": self.ingress_id}))

    async def shutdown(self) -> None:
        if self._announcer is not None:
            self._announcer.cancel()
        await self.probe.stop()
        await self.records.stop()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.drain()
        if self._open_config is not None and self.views.source is not None:  # we opened it
            await self.views.source.stop()

    # -- ASGI entry -----------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/v1/chat/completions" and method == "POST":
            await self.complete(scope, receive, send, OPENAI)
        elif path == "/v1/embeddings" and method == "POST":
            await self.complete(scope, receive, send, EMBEDDINGS)
        elif path == "/v1/messages" and method == "POST":
            await self.complete(scope, receive, send, ANTHROPIC)
        elif path == "/v1/messages/count_tokens" and method == "POST":
            await self.count_tokens(scope, receive, send)
        elif path == "/v1/models" and method == "GET":
            await self.list_models(scope, send)
        elif path.startswith("/v1/models/") and method == "GET":
            await self.get_model(scope, send, path.removeprefix("/v1/models/"))
        elif path == "/healthz":
            ok = self._nc is not None and self._nc.is_connected
            await send_json(send, 200 if ok else 503, {"status": "ok" if ok else "nats disconnected"})
        elif path == "/readyz":
            await self.readyz(send)
        else:
            await send_error(send, NotFound(f"Unknown route: {method} {path}", code="unknown_route").info())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # noqa: BLE001 - reported to the server, which exits
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- routes ---------------------------------------------------------------------------------------

    def _authenticate(self, scope: Scope, view: ConfigView | None = None) -> str:
        raw = header(scope, b"authorization")
        token: str | None = None
        if raw is not None:
            scheme, _, value = raw.partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
        if not token:
            token = header(scope, b"x-api-key")
        if not token:
            raise AuthenticationFailed(
                "Missing API key: send it as 'Authorization: Bearer <key>' (or 'x-api-key').",
                code="missing_api_key",
            )
        key_hash = hash_api_key(token)
        if key_hash not in (view or self.view()).keys:
            raise AuthenticationFailed("Incorrect API key provided.", code="invalid_api_key")
        return key_hash

    async def list_models(self, scope: Scope, send: Send) -> None:
        anthropic_client = header(scope, b"anthropic-version") is not None
        render = ANTHROPIC.error_body if anthropic_client else OPENAI.error_body
        view = self.view()
        try:
            self._authenticate(scope, view)
        except GatewayError as exc:
            await send_error(send, exc.info(), render=render)
            return
        await send_json(send, 200, view.anthropic_models_payload if anthropic_client else view.models_payload)

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/messages/count_tokens``: an offline estimate (≈ 4 characters a token)."""
        view = self.view()
        try:
            self._authenticate(scope, view)
            check_anthropic_version(scope)
            raw = await read_body(scope, receive, view.config.limits.max_body_bytes)
            body, _ = parse_count_tokens_request(raw)
        except GatewayError as exc:
            await send_error(send, exc.info(), render=ANTHROPIC.error_body)
            return
        await send_json(send, 200, count_tokens(body))

    async def get_model(self, scope: Scope, send: Send, model: str) -> None:
        view = self.view()
        try:
            self._authenticate(scope, view)
            if model not in view.config.models:
                raise NotFound(f"The model '{model}' does not exist.", param="model", code="model_not_found")
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        await send_json(send, 200, {"id": model, "object": "model", "created": 0, "owned_by": "gateway"})

    async def readyz(self, send: Send) -> None:
        """200 only when a request can travel the whole chain now: connected, and a live replica of every
        stage (subscribed, models loaded)."""
        connected = self._nc is not None and self._nc.is_connected
        missing = await self.probe.fresh() if connected else list(STAGES)
        if connected and not missing:
            await send_json(send, 200, {"status": "ready"})
        else:
            status = "nats disconnected" if not connected else f"no live replica of {', '.join(missing)}"
            await send_json(send, 503, {"status": status, "missing": missing})

    async def _admit(self) -> GatewayError | None:
        """Refuse at once what the gateway cannot serve now (see ``ingress/admission.py``)."""
        if self._nc is None or not self._nc.is_connected:
            return ServiceUnavailable("The gateway's message broker is unreachable (it restarts on its own); "
                                      "retry shortly.", code="broker_unavailable", retry_after_s=1.0)
        return await self.probe.refusal() or self.overload.refusal(len(self.waiter))

    async def complete(self, scope: Scope, receive: Receive, send: Send, surface: Surface) -> None:
        """One request of any client surface through the chain."""
        received_at = time.time()
        started = time.perf_counter()
        request_id = uuid7()
        id_header = (b"x-gateway-request-id", request_id.encode())
        body: dict[str, Any] | None = None
        key_hash: str | None = None
        meta: RequestMetadata | None = None
        view = self.view()  # this request keeps the config it started with
        try:
            key_hash = self._authenticate(scope, view)
            if surface is ANTHROPIC:
                check_anthropic_version(scope)
            raw = await read_body(scope, receive, view.config.limits.max_body_bytes)
            parsed = surface.parse(raw)
            body = parsed.body
            meta = read_metadata(scope, body)
            deadline = received_at + self._timeout_s(scope, view.config)
            envelope = Envelope(
                request_id=request_id,
                received_at=received_at,
                deadline=deadline,
                reply_to=self.waiter.subject_for(request_id),
                endpoint=surface.endpoint,
                stream=parsed.stream,
                api_key_hash=key_hash,
                body=body,
                model_requested=parsed.model,
                user=meta.user,
                tags=meta.tags,
                headers=meta.headers,
            )
            refusal = await self._admit()
            if refusal is not None:
                raise refusal
        except GatewayError as exc:
            await self._refuse(send, surface, exc.info(), request_id, received_at, started, body, id_header,
                               key_hash, meta)
            return

        pending = self.waiter.open(request_id, envelope.stream)
        try:
            await self._publish(envelope)
        except GatewayError as exc:
            self.waiter.close(request_id)
            await self._refuse(send, surface, exc.info(), request_id, received_at, started, body, id_header,
                               key_hash, meta)
            return
        try:
            if envelope.stream:
                await self._relay_stream(send, surface, pending, envelope, started, id_header)
            else:
                await self._relay_response(send, surface, pending, envelope, started, id_header)
        finally:
            self.waiter.close(request_id)

    # -- helpers --------------------------------------------------------------------------------------

    def _timeout_s(self, scope: Scope, config: GatewayConfig) -> float:
        limit = config.timeouts.request_s
        asked = header(scope, b"x-gateway-timeout-ms")
        if asked is None:
            return limit
        try:
            value = float(asked) / 1000
        except ValueError:
            raise InvalidRequest("x-gateway-timeout-ms must be a number of milliseconds.",
                                 param="x-gateway-timeout-ms") from None
        if value <= 0:
            raise InvalidRequest("x-gateway-timeout-ms must be positive.", param="x-gateway-timeout-ms")
        return min(value, limit)

    async def _publish(self, envelope: Envelope) -> None:
        """Into the GW_REQ work queue, stored before we wait for the answer. A publish cut by a broker
        restart is sent again with the same message id: JetStream keeps one copy either way."""
        assert self._js is not None
        data = encode(envelope)
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                await self._js.publish(subjects.REQ_REDACT, data, headers={"Nats-Msg-Id": envelope.request_id},
                                       timeout=PUBLISH_TIMEOUT_S)
                return
            except Exception as exc:  # noqa: BLE001 - any broker failure: try again, then refuse
                log.info("publish of %s failed (attempt %d): %r", envelope.request_id, attempt + 1, exc)
                if envelope.remaining_s() <= PUBLISH_TIMEOUT_S:
                    break
        raise ServiceUnavailable("The gateway could not accept the request (message broker unavailable); "
                                 "retry shortly.", code="broker_unavailable", retry_after_s=1.0)

    async def _next(self, pending: Pending, envelope: Envelope) -> Reply | None:
        timeout = envelope.remaining_s() + DEADLINE_GRACE_S
        try:
            return await asyncio.wait_for(pending.queue.get(), timeout=max(0.001, timeout))
        except TimeoutError:
            return None

    @staticmethod
    def _overhead_header(started: float, provider_ms: float) -> tuple[bytes, bytes]:
        overhead = max(0.0, (time.perf_counter() - started) * 1000 - provider_ms)
        return (b"x-gateway-overhead-ms", f"{overhead:.3f}".encode())

    def _observe(self, started: float, provider_ms: float) -> None:
        self.overload.observe(max(0.0, (time.perf_counter() - started) * 1000 - provider_ms))

    async def _relay_response(self, send: Send, surface: Surface, pending: Pending, envelope: Envelope,
                              started: float, id_header: tuple[bytes, bytes]) -> None:
        reply = await self._next(pending, envelope)
        if reply is None:
            await self._timed_out(send, surface, pending, envelope, started, id_header)
            return
        self._observe(started, reply.provider_ms)
        headers = [id_header, self._overhead_header(started, reply.provider_ms)]
        if reply.kind == "response":
            body = surface.response_body(reply.body or {}, envelope.model_requested)
            await send_json(send, reply.status, body, headers)
        elif reply.kind == "error" and reply.error is not None:
            await send_error(send, reply.error, headers, surface.error_body)
        else:
            error = InternalError(f"unexpected reply kind {reply.kind!r}").info()
            await send_error(send, error, headers, surface.error_body)

    async def _relay_stream(self, send: Send, surface: Surface, pending: Pending, envelope: Envelope,
                            started: float, id_header: tuple[bytes, bytes]) -> None:
        """Relay a stream; ``pending`` hands the chunks over in order, once, from the run it follows."""
        renderer = surface.stream(envelope.model_requested, envelope.request_id)
        started_sse = False
        while True:
            reply = await self._next(pending, envelope)
            if reply is None:
                if not started_sse:
                    await self._timed_out(send, surface, pending, envelope, started, id_header)
                else:
                    error = DeadlineExceeded("The request deadline passed while streaming.").info()
                    self.waiter.settle(pending, error.status_code, error)
                    await self._close_stream(send, renderer.error(error))
                    self._record_ended(envelope, error)
                return
            if not started_sse:
                if reply.kind == "error" and reply.error is not None:
                    headers = [id_header, self._overhead_header(started, reply.provider_ms)]
                    await send_error(send, reply.error, headers, surface.error_body)
                    return
                ttfb = reply.ttfb_ms or 0.0
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*SSE_HEADERS, id_header, self._overhead_header(started, ttfb)]})
                started_sse = True
            if reply.kind == "chunk":
                data = renderer.chunk(reply.body or {})
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            elif reply.kind == "error" and reply.error is not None:
                await self._close_stream(send, renderer.error(reply.error))
                return
            else:  # end
                self._observe(started, reply.provider_ms)
                await self._close_stream(send, renderer.end())
                return

    @staticmethod
    async def _close_stream(send: Send, data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": False})

    async def _timed_out(self, send: Send, surface: Surface, pending: Pending, envelope: Envelope, started: float,
                         id_header: tuple[bytes, bytes]) -> None:
        error = DeadlineExceeded(
            f"The request did not complete within its deadline of "
            f"{envelope.deadline - envelope.received_at:.1f}s."
        ).info()
        self.waiter.settle(pending, error.status_code, error)
        await send_error(send, error, [id_header, self._overhead_header(started, 0.0)], surface.error_body)
        self._record_ended(envelope, error)

    async def _refuse(self, send: Send, surface: Surface, error: ErrorInfo, request_id: str, received_at: float,
                      started: float, body: dict[str, Any] | None, id_header: tuple[bytes, bytes],
                      key_hash: str | None, meta: RequestMetadata | None = None) -> None:
        await send_error(send, error, [id_header, self._overhead_header(started, 0.0)], surface.error_body)
        model = body.get("model") if isinstance(body, dict) else None
        stream = bool(body.get("stream")) if isinstance(body, dict) else False
        user = body.get("user") if isinstance(body, dict) else None  # metadata may be what was refused
        self._record_refused(request_id, received_at, started, error, endpoint=surface.endpoint, stream=stream,
                     model=model if isinstance(model, str) else "", key_hash=key_hash,
                     user=meta.user if meta else user if isinstance(user, str) else "",
                     tags=meta.tags if meta else None)

    def _record_ended(self, envelope: Envelope, error: ErrorInfo) -> None:
        """A request ingress itself ended after publishing it (its deadline passed): one ``requests`` row,
        from the envelope as ingress sent it (no body: it was never redacted)."""
        key = self.keys.get(envelope.api_key_hash) if envelope.api_key_hash else None
        self.records.add(RequestCompleted.from_envelope(
            envelope, stage="ingress", status=error.status_code, error=error,
            tenant=key.tenant if key else "", api_key_id=key.id if key else ""))

    def _record_refused(self, request_id: str, received_at: float, started: float, error: ErrorInfo, *,
                stream: bool, model: str = "", key_hash: str | None = None,
                endpoint: str = "chat.completions", user: str = "",
                tags: dict[str, str] | None = None) -> None:
        """Requests ended by ingress itself still become one ``requests`` row; no body, since it was
        never redacted. Queued (``ingress/records.py``): the answer never waits for the broker."""
        now = time.time()
        latency = (time.perf_counter() - started) * 1000
        key = self.keys.get(key_hash) if key_hash else None
        self.records.add(RequestCompleted(
            event_id=uuid7(), request_id=request_id, ts=received_at, finished_at=now, stage="ingress",
            endpoint=endpoint,
            tenant=key.tenant if key else "", api_key_id=key.id if key else "", user=user, tags=tags or {},
            model_requested=model, stream=stream, status_code=error.status_code, error_type=error.type,
            error_code=error.code or "", error_message=error.message, latency_ms=round(latency, 3),
            gateway_overhead_ms=round(latency, 3),
        ))
