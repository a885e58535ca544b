"""OpenTelemetry traces through the whole gateway: a request sent with the caller's ``traceparent`` shows
up at an OTLP/HTTP receiver as one trace of seven spans with the right parents (the gateway's span under
the caller's, one per stage under it, the provider call under the provider stage), GenAI attributes on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, mock_requests, start_gateway

pytestmark = pytest.mark.integration

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", free_port()), Handler)
        self.spans: list[Any] = []
        self.paths: list[str] = []


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.paths.append(self.path)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.server.spans.extend(scope_spans.spans)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[RunningGateway]:
    gw = start_gateway(tmp_path_factory.mktemp("traced"), gateway_config(free_port()), replicas=["ingress=1"],
                       extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.server_port}",
                                  "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "gw-under-test"})
    try:
        yield gw
    finally:
        gw.stop()


def spans_of(receiver: Receiver, trace: str, at_least: int) -> list[Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [s for s in receiver.spans if s.trace_id.hex() == trace]
        if len(found) >= at_least:
            return found
        time.sleep(0.1)
    return [s for s in receiver.spans if s.trace_id.hex() == trace]


def test_one_request_is_seven_spans_under_the_callers(traced: RunningGateway, receiver: Receiver) -> None:
    response = httpx.post(f"{traced.base_url}/v1/chat/completions", timeout=30, headers={
        "authorization": f"Bearer {DEMO_KEY}", "traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    spans = spans_of(receiver, TRACE, 7)
    assert len(spans) == 7, [s.name for s in spans]
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    by_name = {s.name: s for s in spans}
    root = by_name["gateway chat.completions"]
    assert root.parent_span_id.hex() == CALLER_SPAN
    stages = {f"stage {s}" for s in ("redaction", "policy", "routing", "provider", "output_filter")}
    assert stages <= set(by_name)
    assert all(by_name[name].parent_span_id == root.span_id for name in stages)
    call = next(s for s in spans if s.name.startswith("call "))
    assert call.parent_span_id == by_name["stage provider"].span_id
    attrs = {a.key: a.value for a in root.attributes}
    assert attrs["gen_ai.request.model"].string_value == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"].int_value > 0
    assert attrs["gateway.request_id"].string_value == response.headers["x-gateway-request-id"]
    # times nest: every span inside the gateway's
    assert all(root.start_time_unix_nano <= s.start_time_unix_nano <= s.end_time_unix_nano
               <= root.end_time_unix_nano + 1_000_000 for s in spans)
    # the provider was told its parent: the call's span, so its own spans join the trace
    sent = [r for r in mock_requests(traced) if r["path"].endswith("/chat/completions")][-1]
    assert sent["headers"]["traceparent"] == f"00-{TRACE}-{call.span_id.hex()}-01"


def test_without_a_traceparent_the_trace_is_the_request_id(traced: RunningGateway, receiver: Receiver) -> None:
    response = httpx.post(f"{traced.base_url}/v1/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {DEMO_KEY}"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    trace = response.headers["x-gateway-request-id"].replace("-", "")
    spans = spans_of(receiver, trace, 7)
    assert len(spans) == 7 and sum(1 for s in spans if not s.parent_span_id) == 1


def test_a_caller_not_sampling_gets_no_spans(traced: RunningGateway, receiver: Receiver) -> None:
    unsampled = "5bf92f3577b34da6a3ce929d0e0e4736"
    response = httpx.post(f"{traced.base_url}/v1/chat/completions", timeout=30, headers={
        "authorization": f"Bearer {DEMO_KEY}", "traceparent": f"00-{unsampled}-{CALLER_SPAN}-00"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    rid = response.headers["x-gateway-request-id"]
    traced.wait_rows(f"SELECT 1 FROM requests WHERE request_id = '{rid}'", lambda rows: len(rows) == 1)
    after = httpx.post(f"{traced.base_url}/v1/chat/completions", timeout=30,  # sampled, recorded after it
                       headers={"authorization": f"Bearer {DEMO_KEY}"},
                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert len(spans_of(receiver, after.headers["x-gateway-request-id"].replace("-", ""), 7)) == 7
    assert not [s for s in receiver.spans if s.trace_id.hex() == unsampled]
