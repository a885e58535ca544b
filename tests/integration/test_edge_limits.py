"""The HTTP edge at its limits, over raw sockets against a live gateway: huge and many headers, slow headers
and bodies (slowloris, one client and 200 at once), deep nesting, invalid UTF-8, NUL bytes, 10,000
messages, wrong methods and paths. Each is refused cleanly in the OpenAI error shape (or served), and the
gateway keeps serving normal requests meanwhile and afterwards."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway

pytestmark = pytest.mark.integration

BODY_TIMEOUT_S = 2.0
HEADER_TIMEOUT_S = 2.0
MAX_BODY = 1024 * 1024
AUTH = f"Authorization: Bearer {DEMO_KEY}\r\n".encode()
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("edge")
    mock_port = free_port()
    config = gateway_config(mock_port, limits={"max_body_bytes": MAX_BODY})
    gw = start_gateway(root, config, replicas=["stages=1"], extra_env={  # two ingress processes (SO_REUSEPORT)
        "GATEWAY_BODY_TIMEOUT_S": str(BODY_TIMEOUT_S), "GATEWAY_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S)})
    try:
        yield gw
    finally:
        gw.stop()


def exchange(gw: RunningGateway, data: bytes, wait_s: float = 10.0) -> tuple[bytes, bool]:
    """Send ``data``, read until the server closes: (what it answered, whether it closed in time)."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=wait_s) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except TimeoutError:
            return out, False
        except ConnectionResetError:
            return out, True
    return out, True


def request(method: str, path: str, body: bytes = b"", headers: bytes = AUTH) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n".encode() + headers
    if body or method == "POST":
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def assert_error(raw: bytes, status: int, code: str) -> dict[str, str]:
    got, headers, body = parse(raw)
    assert got == status, raw[:500]
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["code"] == code, error
    return headers


def assert_serving(gw: RunningGateway) -> None:
    response = httpx.post(f"{gw.base_url}/v1/chat/completions", json=CHAT,
                          headers={"authorization": f"Bearer {DEMO_KEY}"}, timeout=30)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("headers", [
    b"X-Big: " + b"a" * 100_000 + b"\r\n",  # one 100 KB header
    b"".join(b"X-H%d: v\r\n" % i for i in range(1000)),  # 1,000 headers
], ids=["one-100KB-header", "1000-headers"])
def test_huge_headers_are_431_and_the_connection_closed(edge: RunningGateway, headers: bytes) -> None:
    raw, closed = exchange(edge, request("GET", "/v1/models", headers=AUTH + headers))
    assert closed
    assert assert_error(raw, 431, "headers_too_large")["connection"] == "close"
    assert_serving(edge)


@pytest.mark.parametrize("header", [b"X-A: a\x00b\r\n", b"X-A: a\rb\r\n", b"X-A: a\nb c\r\n"],
                         ids=["NUL", "CR", "LF"])
def test_nul_or_cr_lf_in_a_header_value_is_400_in_the_error_shape(edge: RunningGateway, header: bytes) -> None:
    raw, closed = exchange(edge, request("GET", "/v1/models", headers=AUTH + header))
    assert closed
    assert_error(raw, 400, "invalid_http")
    assert_serving(edge)


@pytest.mark.parametrize(("body", "code"), [
    (b"[" * 100_000, "invalid_json"),  # 100k '[': orjson's depth limit, no recursion crash
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "x": '
     + b"[" * 300 + b"]" * 300 + b"}", "json_too_deep"),  # was a 500 from the provider stage
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "invalid_json"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a\x00b"}]}', "invalid_json"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud800"}]}', "invalid_json"),
    (b"", "invalid_json"),
    (b"[1, 2]", "invalid_json"),
    (b"model=gpt-4o-mini", "invalid_json"),
], ids=["100k-brackets", "depth-300", "invalid-utf8", "raw-NUL", "lone-surrogate", "empty", "array", "form"])
def test_bodies_the_parser_refuses_are_400(edge: RunningGateway, body: bytes, code: str) -> None:
    raw, _ = exchange(edge, request("POST", "/v1/chat/completions", body))
    headers = assert_error(raw, 400, code)
    assert headers["x-gateway-request-id"]
    assert_serving(edge)


def test_escaped_nul_in_a_string_is_served_through_the_chain(edge: RunningGateway) -> None:
    body = json.dumps({**CHAT, "messages": [{"role": "user", "content": "a\u0000b"}]}).encode()
    assert b"\\u0000" in body
    status, _, answer = parse(exchange(edge, request("POST", "/v1/chat/completions", body))[0])
    assert status == 200, answer
    assert json.loads(answer)["object"] == "chat.completion"


def test_nesting_at_the_limit_is_served_through_the_chain(edge: RunningGateway) -> None:
    body = json.dumps({**CHAT, "metadata_extra": json.loads("[" * 63 + "]" * 63)}).encode()
    status, _, answer = parse(exchange(edge, request("POST", "/v1/chat/completions", body))[0])
    assert status == 200, answer


def test_ten_thousand_messages_travel_the_whole_chain(edge: RunningGateway) -> None:
    """No message-count cap (OpenAI has none): the body size is the bound, and the chain (redaction,
    policy, routing, provider, output filter) serves 10,000 messages without a 5xx or a hang."""
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"} for i in range(10_000)]
    body = json.dumps({"model": "gpt-4o-mini", "messages": messages}).encode()
    assert len(body) < MAX_BODY
    response = httpx.post(f"{edge.base_url}/v1/chat/completions", content=body, timeout=60,
                          headers={"authorization": f"Bearer {DEMO_KEY}", "content-type": "application/json"})
    assert response.status_code == 200, response.text[:500]
    assert response.json()["choices"][0]["message"]["role"] == "assistant"


def test_a_body_over_the_limit_is_413_and_the_connection_closed(edge: RunningGateway) -> None:
    body = b'{"model": "gpt-4o-mini", "x": "' + b"a" * MAX_BODY + b'"}'
    raw, closed = exchange(edge, request("POST", "/v1/chat/completions", body))
    assert closed
    assert assert_error(raw, 413, "request_too_large")["connection"] == "close"
    # declared small, sent chunked past the limit: counted, not trusted
    chunked = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n" + AUTH + b"Transfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (65536, b"a" * 65536) for _ in range(17)) + b"0\r\n\r\n")
    raw, closed = exchange(edge, chunked)
    assert closed
    assert_error(raw, 413, "request_too_large")
    assert_serving(edge)


def test_a_slow_body_is_cut_with_a_408(edge: RunningGateway) -> None:
    """A byte every 0.3 s, then silence (sending on past the server's close would race its 408 with a reset:
    the 200-client test below does that): the body deadline cuts it, counted from the first read."""
    with socket.create_connection(("127.0.0.1", edge.port), timeout=BODY_TIMEOUT_S * 5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n" + AUTH + b"Content-Length: 100\r\n\r\n")
        started = time.monotonic()
        for byte in b'{"m':
            sock.sendall(bytes([byte]))
            time.sleep(0.3)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    elapsed = time.monotonic() - started
    assert BODY_TIMEOUT_S * 0.9 < elapsed < BODY_TIMEOUT_S * 4  # at its deadline, not when the client stopped
    assert assert_error(out, 408, "request_timeout")["connection"] == "close"
    assert_serving(edge)


def test_slow_headers_are_cut_with_a_408_and_a_silent_connection_closed(edge: RunningGateway) -> None:
    raw, closed = exchange(edge, b"GET /v1/models HTTP/1.1\r\nHost: g\r\n", wait_s=HEADER_TIMEOUT_S * 5)
    assert closed
    assert_error(raw, 408, "request_timeout")
    raw, closed = exchange(edge, b"", wait_s=HEADER_TIMEOUT_S * 5)
    assert closed and raw == b""


def test_two_hundred_slowloris_clients_do_not_stop_normal_requests(edge: RunningGateway) -> None:
    """200 connections trickle a body a byte a second; normal requests are served meanwhile, and every slow
    one is cut at the body deadline: a 408 in the error shape, or a reset when the client's next byte crossed
    the server's close (the 408 then dies in the client's buffer), never later than the deadline allows."""
    answers: list[tuple[bytes, float]] = []
    lock = threading.Lock()

    def slow_client() -> None:
        started = time.monotonic()
        out = b""
        try:
            with socket.create_connection(("127.0.0.1", edge.port), timeout=BODY_TIMEOUT_S * 10) as sock:
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: g\r\n" + AUTH
                             + b"Content-Length: 1000\r\n\r\n{")
                sock.settimeout(1.0)
                while time.monotonic() - started < BODY_TIMEOUT_S * 8:
                    try:
                        chunk = sock.recv(65536)
                    except TimeoutError:
                        sock.sendall(b" ")  # one more byte a second
                        continue
                    if not chunk:
                        break
                    out += chunk
        except OSError:
            out = b"reset"
        with lock:
            answers.append((out, time.monotonic() - started))

    threads = [threading.Thread(target=slow_client) for _ in range(200)]
    for thread in threads:
        thread.start()
    for _ in range(5):
        assert_serving(edge)  # served while 200 slow bodies are open
    for thread in threads:
        thread.join(timeout=BODY_TIMEOUT_S * 12)
    assert len(answers) == 200
    cut = [out for out, _ in answers if out != b"reset"]
    assert len(cut) >= 100, f"{200 - len(cut)} of 200 reset"
    for out in cut:
        assert_error(out, 408, "request_timeout")
    assert all(elapsed < BODY_TIMEOUT_S * 6 for _, elapsed in answers), sorted(e for _, e in answers)[-5:]
    assert_serving(edge)


@pytest.mark.parametrize(("method", "path", "status", "code", "allow"), [
    ("GET", "/v1/chat/completions", 405, "method_not_allowed", "POST"),
    ("PUT", "/v1/embeddings", 405, "method_not_allowed", "POST"),
    ("DELETE", "/v1/messages", 405, "method_not_allowed", "POST"),
    ("POST", "/v1/models", 405, "method_not_allowed", "GET"),
    ("GET", "/v1/../admin/v1/keys", 404, "unknown_route", None),
    ("GET", "/v1/models/..%2F..%2Fadmin%2Fv1%2Fkeys", 404, "model_not_found", None),
    ("GET", "/v1/chat%2Fcompletions", 405, "method_not_allowed", "POST"),  # uvicorn decodes %2F: the same path
    ("GET", "/nothing/here", 404, "unknown_route", None),
])
def test_wrong_methods_and_odd_paths(edge: RunningGateway, method: str, path: str, status: int, code: str,
                                     allow: str | None) -> None:
    raw, _ = exchange(edge, request(method, path))
    headers = assert_error(raw, status, code)
    assert headers.get("allow") == allow


def test_wrong_content_type_is_parsed_as_json(edge: RunningGateway) -> None:
    """The body is JSON whatever the Content-Type says (as the OpenAI API does): a JSON body with text/plain is
    served, a non-JSON one is a 400 invalid_json, never a 415 a client's SDK would not expect."""
    body = json.dumps(CHAT).encode()
    response = httpx.post(f"{edge.base_url}/v1/chat/completions", content=body, timeout=30,
                          headers={"authorization": f"Bearer {DEMO_KEY}", "content-type": "text/plain"})
    assert response.status_code == 200, response.text
