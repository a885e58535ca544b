"""The mock provider as a raw ASGI app (no framework) and `run()` to serve it with uvicorn + uvloop."""

from __future__ import annotations

import asyncio
import itertools
import logging
import urllib.parse
from typing import Protocol, runtime_checkable

import orjson

from infra.doubles.mock_provider import admin
from infra.doubles.mock_provider.anthropic_wire import WIRE as ANTHROPIC
from infra.doubles.mock_provider.asgi import (
    JSON_HEADERS,
    SSE_HEADERS,
    ClientGone,
    Headers,
    Receive,
    Scope,
    Send,
    StreamCut,
    read_body,
    send_bytes,
    wait_for_disconnect,
)
from infra.doubles.mock_provider.bedrock_wire import WIRE as BEDROCK
from infra.doubles.mock_provider.cohere_wire import WIRE as COHERE
from infra.doubles.mock_provider.conversation import Prompt, Reply, Route, Wire, WireError, make_reply, strip_prompt
from infra.doubles.mock_provider.directives import DirectiveError, Fault, build_fault, merge
from infra.doubles.mock_provider.embeddings_wire import WIRE as EMBEDDINGS
from infra.doubles.mock_provider.faults import FaultBook
from infra.doubles.mock_provider.gemini_wire import WIRE as GEMINI
from infra.doubles.mock_provider.openai_wire import WIRE as OPENAI
from infra.doubles.mock_provider.openai_wire import error_body as openai_error
from infra.doubles.mock_provider.recorder import Recorder

FAULT_HEADER = b"x-mock-fault"
_MARKER = b"[[mock"
_STATIC_ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/v1/chat/completions"): Route(OPENAI),
    ("POST", "/v1/messages"): Route(ANTHROPIC),
    ("POST", "/v2/chat"): Route(COHERE),
    ("POST", "/v1/embeddings"): Route(EMBEDDINGS),
}
_GEMINI_PREFIXES = ("/v1beta/models/", "/v1/models/")
_BEDROCK_PREFIX = "/model/"
_BEDROCK_ACTIONS = (("/converse-stream", True), ("/converse", False))
MODELS = ("gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest", "claude-sonnet-4-5", "gemini-2.0-flash")
_MODELS_BODY = orjson.dumps(
    {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"} for m in MODELS],
    }
)


def find_route(method: str, path: str, query: bytes) -> Route | None:
    """The provider route a request addresses, or None."""
    route = _STATIC_ROUTES.get((method, path))
    if route is not None or method != "POST":
        return route
    if path.startswith("/openai/deployments/") and path.endswith("/chat/completions"):
        # Azure OpenAI: OpenAI's wire format, the deployment (the model) in the path
        return Route(OPENAI, model=path.removeprefix("/openai/deployments/").removesuffix("/chat/completions"))
    if path.startswith(_BEDROCK_PREFIX):
        # Bedrock Converse: the model id (maybe an ARN, with its `/` percent-encoded) in the path
        for suffix, stream in _BEDROCK_ACTIONS:
            model = path[len(_BEDROCK_PREFIX) :].removesuffix(suffix)
            if path.endswith(suffix) and model:
                return Route(BEDROCK, model=urllib.parse.unquote(model), stream=stream, sse=False)
        return None
    for prefix in _GEMINI_PREFIXES:
        if path.startswith(prefix):
            model, sep, action = path[len(prefix) :].rpartition(":")
            if not sep or not model:
                return None
            if action == "generateContent":
                return Route(GEMINI, model=model)
            if action == "streamGenerateContent":
                return Route(GEMINI, model=model, stream=True, sse=b"alt=sse" in query)
    return None


@runtime_checkable
class StreamHeaders(Protocol):
    """A wire whose streams are neither SSE nor JSON (Bedrock's binary event stream) sets its own headers."""

    stream_headers: Headers


@runtime_checkable
class ErrorHeaders(Protocol):
    """A wire whose error answers carry headers (Bedrock's `x-amzn-ErrorType`)."""

    def error_headers(self, status: int) -> Headers: ...


async def _send_error(send: Send, wire: Wire, status: int, message: str, extra: Headers | None = None) -> None:
    headers = [*wire.error_headers(status), *(extra or [])] if isinstance(wire, ErrorHeaders) else extra
    await send_bytes(send, status, wire.error(status, message), extra=headers)


def _retry_headers(fault: Fault) -> Headers:
    extra: Headers = []
    if fault.retry_after is not None:
        extra.append((b"retry-after", fault.retry_after.encode()))
    if fault.retry_after_ms is not None:
        extra.append((b"retry-after-ms", str(fault.retry_after_ms).encode()))
    return extra


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class MockProvider:
    """The ASGI app. Each instance has its own recorder and fault state (tests make fresh ones)."""

    def __init__(self, record_limit: int = 10_000) -> None:
        self.recorder = Recorder(record_limit)
        self.faults = FaultBook()
        self._ids = itertools.count(1)
        self.streaming = 0  # paced streams being sent now (`/_mock/health`)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            try:
                await self._http(scope, receive, send)
            except ClientGone:
                return
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        route = find_route(method, path, scope["query_string"])
        if route is not None:
            await self._provider(route, scope, receive, send)
        elif path.startswith("/_mock/"):
            await admin.handle(method, path, receive, send, self.recorder, self.faults, scope["query_string"],
                               self.streaming)
        elif path == "/v1/models" and method == "GET":
            self.recorder.record(method, path, scope["query_string"], scope["headers"], None)
            await send_bytes(send, 200, _MODELS_BODY)
        else:
            body = openai_error(404, f"Invalid URL ({method} {path})", "unknown_url")
            await send_bytes(send, 404, body)

    async def _provider(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        wire = route.wire
        raw = await read_body(receive)
        headers: Headers = scope["headers"]
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._record(scope, raw.decode("utf-8", "replace"))
            await _send_error(send, wire, 400, "We could not parse the JSON body of your request.")
            return
        self._record(scope, body)
        try:
            prompt = wire.parse(body, route)
            fault = self._fault_for(prompt, raw, headers)
        except (WireError, DirectiveError) as exc:
            await _send_error(send, wire, 400, str(exc))
            return
        if fault is None:
            reply = make_reply(prompt, None)
            if prompt.stream:
                await self._stream(wire, reply, prompt, send, None, 0, receive)
            else:
                await send_bytes(send, 200, wire.completion(reply, prompt, next(self._ids)))
            return
        await self._faulted(wire, prompt, fault, receive, send)

    def _record(self, scope: Scope, body: object) -> None:
        self.recorder.record(scope["method"], scope["path"], scope["query_string"], scope["headers"], body)

    def _fault_for(self, prompt: Prompt, raw: bytes, headers: Headers) -> Fault | None:
        """The request's own directives (header wins), else a matching scripted fault, else None."""
        header_spec: str | None = None
        for name, value in headers:
            if name == FAULT_HEADER:
                header_spec = value.decode("latin-1")
        specs = strip_prompt(prompt) if _MARKER in raw else []
        if specs or header_spec is not None:
            return build_fault(merge(specs, header_spec))
        if self.faults.scripted:
            return self.faults.pick(prompt.model)
        return None

    async def _faulted(self, wire: Wire, prompt: Prompt, fault: Fault, receive: Receive, send: Send) -> None:
        fault = self.faults.attempt(fault)
        if fault.latency_ms:
            await asyncio.sleep(fault.latency_ms / 1000)
        if fault.timeout:
            await wait_for_disconnect(receive)
            return
        if fault.status is not None:
            message = f"mock fault: HTTP {fault.status}"
            await _send_error(send, wire, fault.status, message, _retry_headers(fault))
            return
        reply = make_reply(prompt, fault)
        if prompt.stream:
            await self._stream(wire, reply, prompt, send, fault.cut_after, fault.chunk_delay_ms, receive)
        else:
            await send_bytes(send, 200, wire.completion(reply, prompt, next(self._ids)))

    async def _stream(
        self, wire: Wire, reply: Reply, prompt: Prompt, send: Send, cut_after: int | None, delay_ms: int,
        receive: Receive,
    ) -> None:
        events = wire.stream(reply, prompt, next(self._ids), cut_after)
        cut = cut_after is not None
        if isinstance(wire, StreamHeaders):
            headers = wire.stream_headers
        else:
            headers = SSE_HEADERS if prompt.sse else JSON_HEADERS
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if delay_ms <= 0:
            # No pacing asked for: one write keeps the benchmark upstream cheap; the events are the same.
            await send({"type": "http.response.body", "body": b"".join(events), "more_body": cut})
        else:
            # Paced: like a real provider, stop generating when the client goes away (uvicorn's send
            # does nothing then, so without this a cut stream ran on to its end, and a stopping server
            # waited for it).
            gone = asyncio.ensure_future(wait_for_disconnect(receive))
            self.streaming += 1
            try:
                delay = delay_ms / 1000
                for index, event in enumerate(events):
                    if index and (await asyncio.wait({gone}, timeout=delay))[0]:
                        return
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                if not cut:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                self.streaming -= 1
                gone.cancel()
        if cut:
            raise StreamCut("mock cut_after: dropping the connection mid-stream")


def _drop_stream_cuts(record: logging.LogRecord) -> bool:
    """Keep uvicorn from logging a traceback for each deliberate `cut_after` disconnect."""
    return not (record.exc_info is not None and isinstance(record.exc_info[1], StreamCut))


app = MockProvider()


def run(host: str = "127.0.0.1", port: int = 8090) -> None:
    """Serve `app` with uvicorn (uvloop + httptools, quiet logs) until interrupted."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,  # a stop does not wait on a slow stream (a client still reading one)
    )
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_drop_stream_cuts)
    server.run()
