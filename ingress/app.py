"""The ingress ASGI app: lifecycle, routes, admission, and publishing requests into the chain.

Reading a request into its envelope (the key, the body, the timeout) is ``ingress/intake.py``;
answering the caller (the reply as JSON or SSE, ingress's own 504, refusals, their records) is
``ingress/relay.py``.

The config is live (hot reload, ``ingress/config_view.py``): keys, the models lists, body limits and
timeouts follow the current version; a request keeps the view it started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infra import nats_connect
from infra.file_store import FileStore
from infra.key_directory import StaticKeys
from infra.metrics_exposition import answer_scrapes, process_name, process_registry
from infra.nats_identity import ANONYMOUS
from ingress.admin_api import ADMIN_PREFIX, AdminApi
from ingress.admission import ChainProbe, Overload
from ingress.anthropic_batches_api import AnthropicBatchesApi
from ingress.anthropic_surface import count_tokens, parse_count_tokens_request
from ingress.asgi import BODY_TIMEOUT_S, Handler, Receive, Scope, Send, header, read_body, send_error, send_json
from ingress.async_api import AsyncApi, wants_async
from ingress.batches_api import BatchesApi
from ingress.config_view import ConfigOpener, ConfigSource, ConfigView, KeysOpener, KeySource, StaticConfig, ViewCache
from ingress.files_api import FilesApi
from ingress.intake import Intake, authenticate, check_anthropic_version
from ingress.metrics_api import IngressCollector, MetricsApi
from ingress.openapi import openapi_document
from ingress.records import RecordOutbox
from ingress.relay import Relay
from ingress.replies import ReplyWaiter
from ingress.routes import OPENAPI_PATH, ROUTES, allowed_methods, template_route
from ingress.surfaces import ANTHROPIC, EMBEDDINGS, OPENAI, Surface
from ingress.ui_api import UiApi
from schemas import subjects
from schemas.config import ApiKey, GatewayConfig
from schemas.envelope import Envelope
from schemas.errors import GatewayError, InvalidRequest, NotFound, ServiceUnavailable
from schemas.files import DEFAULT_MAX_FILE_BYTES
from schemas.governance import KeyDirectory
from schemas.ids import uuid7
from schemas.sealed_request import seal_request

log = logging.getLogger("gateway.ingress")

PUBLISH_ATTEMPTS = 2
PUBLISH_TIMEOUT_S = 3.0
# The stages a request travels: /readyz and admission check that each has a live replica.
STAGES = ("redaction", "policy", "routing", "provider", "output_filter")


class Ingress:
    def __init__(self, config: GatewayConfig | ConfigSource | None, nats_url: str, ingress_id: str | None = None,
                 *, open_config: ConfigOpener | None = None, overload: Overload | None = None,
                 probe_every_s: float = 2.0, open_keys: KeysOpener | None = None,
                 admin_key_sha256: str | None = None, envelope_key: bytes,
                 identity: str = ANONYMOUS, body_timeout_s: float = BODY_TIMEOUT_S,
                 max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        """``config``: a fixed config or a live source; or ``None`` with ``open_config``, which opens the
        live source at lifespan startup (on the server's event loop) and which ingress stops at shutdown.
        ``open_keys`` opens the live key directory at startup (default: the config's keys only).
        ``admin_key_sha256``: the admin API's key (else the config's ``admin.key_sha256``); ``identity``:
        this process's NATS identity, the subject the admin API's audit entries go out on.
        ``envelope_key``: the key every request is sealed with before it is stored in ``GW_REQ``
        (``Settings.sealing_key()``; the redaction stage opens it with the same key).
        ``body_timeout_s``: the time a request's body may take to arrive (then 408, ``GATEWAY_BODY_TIMEOUT_S``);
        for a file upload, the time each of its chunks may take. ``max_file_bytes``: the Files API's upload
        limit (then 413, ``GATEWAY_MAX_FILE_BYTES``)."""
        if config is None and open_config is None:
            raise ValueError("Ingress needs a config or open_config")
        self.envelope_key = envelope_key
        self.views = ViewCache(StaticConfig(config) if isinstance(config, GatewayConfig) else config)
        self._open_config = open_config
        self._open_keys = open_keys
        self._keys: KeySource | None = None
        self.admin = AdminApi(lambda: self._js, self.view, admin_key_sha256, identity=identity)
        self.files = FilesApi(lambda: None if self._js is None else FileStore(self._js, envelope_key), self.directory,
                              max_file_bytes, body_timeout_s, lambda: self.view().config.limits.max_body_bytes,
                              lambda record: self.records.add(record))
        self.batches = BatchesApi(lambda: self._js, envelope_key, self.directory, body_timeout_s,
                                  lambda record: self.records.add(record))
        self.message_batches = AnthropicBatchesApi(self.batches, max_file_bytes)
        self.async_requests = AsyncApi(self.batches, lambda: self.config.webhooks)
        self.nats_url = nats_url
        self.body_timeout_s = body_timeout_s
        self.ingress_id = ingress_id or uuid7().replace("-", "")
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self.waiter = ReplyWaiter(self.ingress_id, lambda: self.nc)
        self.probe = ChainProbe(lambda: self._nc, STAGES, every_s=probe_every_s)
        self.overload = overload or Overload()
        self.records = RecordOutbox(lambda: self._nc)
        self.relay = Relay(self.waiter, self.overload, self.records, self.directory)
        self._announcer: asyncio.Task[None] | None = None
        self.metrics_api = MetricsApi(lambda: self._nc, lambda: self._js, self.admin.authorize_if_enabled,
                                      self.directory)
        self.ui = UiApi(lambda: self._nc, lambda: self._js, self.admin.authorize_if_enabled, self.directory,
                        time.time, self.admin.keys_configured)
        self.registry = process_registry()
        self.registry.register(IngressCollector(lambda: len(self.waiter), lambda: len(self.records)))
        # (method, path) -> handler, from the one route table (``ingress/routes.py``)
        self._routes: dict[tuple[str, str], Handler] = {
            (r.method, r.path): getattr(self, r.handler) for r in ROUTES if not r.template}

    def view(self) -> ConfigView:
        """What ingress derives from the current config version (rebuilt once per version)."""
        return self.views.get()

    @property
    def config(self) -> GatewayConfig:
        return self.views.get().config

    @property
    def keys(self) -> dict[str, ApiKey]:
        return self.views.get().keys

    def directory(self) -> KeyDirectory:
        """The key directory of now: the config's keys and, once started with ``open_keys``, GW_KEYS's."""
        if self._keys is None:
            source = self.views.source
            if source is None:
                raise RuntimeError("ingress config not opened yet (lifespan startup)")
            self._keys = StaticKeys(source)
        return self._keys.get()

    # -- lifecycle ------------------------------------------------------------------------------------

    @property
    def nc(self) -> NatsClient:
        assert self._nc is not None, "ingress not started"
        return self._nc

    async def startup(self) -> None:
        if self._open_config is not None and self.views.source is None:
            # before the server accepts requests: never serve a stale file config
            self.views.source = await self._open_config()
        if self._open_keys is not None and self.views.source is not None:
            self._keys = await self._open_keys(self.views.source)
        self._nc = await nats_connect.connect(self.nats_url, f"ingress-{self.ingress_id}")
        self._js = self._nc.jetstream()
        await self._nc.subscribe(self.waiter.wildcard, cb=self.waiter.on_message)
        await self._nc.subscribe(subjects.LOAD_REPORT, cb=self._on_load)
        await answer_scrapes(self._nc, process_name("ingress"), registry=self.registry)
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
        if self._keys is not None:
            await self._keys.stop()
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
        handler = self._routes.get((scope["method"], path))
        if handler is not None:
            await handler(scope, receive, send)
        elif (found := template_route(scope["method"], path)) is not None:
            route, params = found
            scope["path_params"] = params
            await getattr(self, route.handler)(scope, receive, send)
        elif path.startswith(ADMIN_PREFIX):
            await self.admin(scope, receive, send)
        else:
            await self.unknown_route(scope, send)

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

    # -- routes (``ingress/routes.py``) ------------------------------------------------------------------

    async def chat_completions(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.complete(scope, receive, send, OPENAI)

    async def embeddings(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.complete(scope, receive, send, EMBEDDINGS)

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.complete(scope, receive, send, ANTHROPIC)

    async def healthz(self, scope: Scope, receive: Receive, send: Send) -> None:
        ok = self._nc is not None and self._nc.is_connected
        await send_json(send, 200 if ok else 503, {"status": "ok" if ok else "nats disconnected"})

    async def ui_index(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.ui.page(scope, "index.html", send)

    async def ui_asset(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.ui.page(scope, scope["path"].rsplit("/", 1)[-1], send)

    async def ui_overview(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.ui.api(scope, receive, send, "overview")

    async def ui_requests(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.ui.api(scope, receive, send, "requests")

    async def ui_request(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.ui.api(scope, receive, send, "request", scope["path"].rsplit("/", 1)[-1])

    async def ui_auth(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.ui.api(scope, receive, send, "auth")

    async def ui_state(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.ui.api(scope, receive, send, "state")

    async def metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.metrics_api(scope, receive, send)

    async def openapi_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, openapi_document())

    async def unknown_route(self, scope: Scope, send: Send) -> None:
        """404, or 405 with ``Allow`` for a known path asked with another method."""
        method, path = scope["method"], scope["path"]
        allowed = allowed_methods(path)
        if allowed:
            await send_error(send, InvalidRequest(f"{method} is not allowed on {path}; use {', '.join(allowed)}.",
                                                  code="method_not_allowed", status_code=405).info(),
                             [(b"allow", ", ".join(allowed).encode())])
            return
        await send_error(send, NotFound(f"Unknown route: {method} {path} (see {OPENAPI_PATH}).",
                                        code="unknown_route").info())

    async def list_models(self, scope: Scope, receive: Receive, send: Send) -> None:
        anthropic_client = header(scope, b"anthropic-version") is not None
        render = ANTHROPIC.error_body if anthropic_client else OPENAI.error_body
        view = self.view()
        try:
            _, key = authenticate(scope, self.directory())
        except GatewayError as exc:
            await send_error(send, exc.info(), render=render)
            return
        await send_json(send, 200, view.models_for(key, anthropic_client))

    async def count_tokens(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /v1/messages/count_tokens``: an offline estimate (≈ 4 characters a token)."""
        view = self.view()
        try:
            authenticate(scope, self.directory())
            check_anthropic_version(scope)
            raw = await read_body(scope, receive, view.config.limits.max_body_bytes, self.body_timeout_s)
            body, _ = parse_count_tokens_request(raw)
        except GatewayError as exc:
            await send_error(send, exc.info(), render=ANTHROPIC.error_body)
            return
        await send_json(send, 200, count_tokens(body))

    async def get_model(self, scope: Scope, receive: Receive, send: Send) -> None:
        model = scope["path_params"]["id"]
        view = self.view()
        try:
            _, key = authenticate(scope, self.directory())
            if model not in view.config.models or not key.allows(model):
                raise NotFound(f"The model '{model}' does not exist.", param="model", code="model_not_found")
        except GatewayError as exc:
            await send_error(send, exc.info())
            return
        await send_json(send, 200, {"id": model, "object": "model", "created": 0, "owned_by": "gateway"})

    # -- the Files API (``ingress/files_api.py``) -------------------------------------------------------

    async def create_file(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.files.create(scope, receive, send)

    async def list_files(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.files.list(scope, receive, send)

    async def retrieve_file(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.files.retrieve(scope, send, scope["path_params"]["file_id"])

    async def file_content(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.files.content(scope, send, scope["path_params"]["file_id"])

    async def delete_file(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.files.delete(scope, send, scope["path_params"]["file_id"])

    # -- batches and async requests (``ingress/batches_api.py``, ``anthropic_batches_api.py``, ``async_api.py``)

    async def create_batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.batches.create(scope, receive, send)

    async def list_batches(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.batches.list(scope, send)

    async def retrieve_batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.batches.retrieve(scope, send, scope["path_params"]["batch_id"])

    async def cancel_batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.batches.cancel(scope, send, scope["path_params"]["batch_id"])

    async def create_message_batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.message_batches.create(scope, receive, send)

    async def list_message_batches(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.message_batches.list(scope, send)

    async def retrieve_message_batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.message_batches.retrieve(scope, send, scope["path_params"]["message_batch_id"])

    async def cancel_message_batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.message_batches.cancel(scope, send, scope["path_params"]["message_batch_id"])

    async def message_batch_results(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.message_batches.results(scope, send, scope["path_params"]["message_batch_id"])

    async def delete_message_batch(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.message_batches.delete(scope, send, scope["path_params"]["message_batch_id"])

    async def get_async(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.async_requests.get(scope, send, scope["path_params"]["job_id"])

    async def readyz(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        intake = Intake(request_id, received_at)
        id_header = (b"x-gateway-request-id", request_id.encode())
        view = self.view()  # this request keeps the config it started with
        try:
            envelope = await intake.read(scope, receive, surface, view, self.waiter.subject_for(request_id),
                                         self.directory(), body_timeout_s=self.body_timeout_s)
            if wants_async(scope):
                await self.async_requests.submit(scope, send, surface, envelope)
                return
            refusal = await self._admit()
            if refusal is not None:
                raise refusal
        except GatewayError as exc:
            await self.relay.refuse(send, surface, exc.info(), intake, started, id_header)
            return

        pending = self.waiter.open(request_id, envelope.stream)
        try:
            await self._publish(envelope)
        except GatewayError as exc:
            self.waiter.close(request_id)
            await self.relay.refuse(send, surface, exc.info(), intake, started, id_header)
            return
        try:
            if envelope.stream:
                await self.relay.stream(send, surface, pending, envelope, started, id_header)
            else:
                await self.relay.response(send, surface, pending, envelope, started, id_header)
        finally:
            self.waiter.close(request_id)

    # -- publishing -----------------------------------------------------------------------------------

    async def _publish(self, envelope: Envelope) -> None:
        """Into the GW_REQ work queue, sealed (``schemas/sealed_request.py``: nothing of the request is
        readable at rest), stored before we wait for the answer. A publish cut by a broker restart is
        sent again with the same message id: JetStream keeps one copy either way."""
        assert self._js is not None
        data, headers = seal_request(envelope, self.envelope_key)
        for attempt in range(PUBLISH_ATTEMPTS):
            try:
                await self._js.publish(subjects.REQ_REDACT, data, headers=headers, timeout=PUBLISH_TIMEOUT_S)
                return
            except Exception as exc:  # noqa: BLE001 - any broker failure: try again, then refuse
                log.info("publish of %s failed (attempt %d): %r", envelope.request_id, attempt + 1, exc)
                if envelope.remaining_s() <= PUBLISH_TIMEOUT_S:
                    break
        raise ServiceUnavailable("The gateway could not accept the request (message broker unavailable); "
                                 "retry shortly.", code="broker_unavailable", retry_after_s=1.0)
