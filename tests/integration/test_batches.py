"""Batch and async submitters against a live gateway, with the official SDKs unmodified: the OpenAI Batch
API's whole lifecycle (bad files, a bad line, cancel mid-way, tenant isolation, pagination), Anthropic's
Message Batches (create, retrieve, list, results, cancel, delete), async requests with a signed webhook,
and one ``requests`` row per line carrying its ``batch_id`` and ``custom_id``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from infra.nats_server import free_port
from infra.operator.launcher import DEMO_KEY, LIMITED_KEY, RunningGateway, gateway_config, start_gateway
from stages.webhooks import verify

pytestmark = pytest.mark.integration

SECRET = "whsec-test-0123456789"
TERMINAL = {"completed", "failed", "expired", "cancelled"}


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", _Receiver
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            receiver: tuple[str, type[_Receiver]]) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("batches")
    webhooks = {"allow": [f"{receiver[0]}/hooks/"], "secret": "env:TEST_WEBHOOK_SECRET", "first_backoff_s": 0.2}
    config = gateway_config(free_port(), webhooks=webhooks)
    config["providers"]["mock-openai"]["batch_discount"] = 0.5
    gw = start_gateway(root, config, replicas=["stages=1"], extra_env={
        "TEST_WEBHOOK_SECRET": SECRET,
        # a small lane, so a batch of slow lines is still running when the tests cancel it
        "GATEWAY_BATCH_CONCURRENCY": "8", "GATEWAY_BATCH_TENANT_CONCURRENCY": "8"})
    try:
        yield gw
    finally:
        gw.stop()


def _client(gw: RunningGateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="module")
def acme(gateway: RunningGateway) -> Iterator[openai.OpenAI]:
    with _client(gateway, DEMO_KEY) as c:
        yield c


def _lines(n: int, *, text: str = "hello", url: str = "/v1/chat/completions", model: str = "gpt-4o-mini",
           prefix: str = "req") -> bytes:
    out = []
    for i in range(n):
        body: dict[str, Any] = ({"model": model, "input": f"{text} {i}"} if url == "/v1/embeddings"
                                else {"model": model, "messages": [{"role": "user", "content": f"{text} {i}"}]})
        out.append(orjson.dumps({"custom_id": f"{prefix}-{i}", "method": "POST", "url": url, "body": body}) + b"\n")
    return b"".join(out)


def _upload(client: openai.OpenAI, data: bytes, tmp_path: Path, name: str = "in.jsonl") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with path.open("rb") as f:
        return client.files.create(file=f, purpose="batch").id


def _wait(client: openai.OpenAI, batch_id: str, timeout_s: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if batch.status in TERMINAL:
            return batch
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} still {batch.status} after {timeout_s}s")


def _jsonl(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def test_a_batch_runs_every_line_once_through_the_chain(acme: openai.OpenAI, gateway: RunningGateway,
                                                         tmp_path: Path) -> None:
    n = 40
    data = _lines(n, text="mail bob@example.com")
    bad = orjson.dumps({"custom_id": "bad-0", "method": "POST", "url": "/v1/chat/completions",
                        "body": {"model": "gpt-4o-mini", "messages": "not a list"}}) + b"\n"
    file_id = _upload(acme, data + bad, tmp_path)
    created = acme.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"project": "demo"})
    assert created.status == "validating" and created.id.startswith("batch_")
    assert created.metadata is not None and created.metadata["project"] == "demo"
    batch = _wait(acme, created.id)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (n + 1, n, 1)
    assert batch.completed_at and batch.in_progress_at and batch.finalizing_at
    output = _jsonl(acme.files.content(batch.output_file_id or "").read())
    errors = _jsonl(acme.files.content(batch.error_file_id or "").read())
    assert sorted(line["custom_id"] for line in output) == sorted(f"req-{i}" for i in range(n))  # each once
    for line in output:
        assert line["error"] is None and line["response"]["status_code"] == 200
        body = line["response"]["body"]
        assert body["object"] == "chat.completion"
        assert "bob@example.com" in body["choices"][0]["message"]["content"]  # restored for the caller
    assert [e["custom_id"] for e in errors] == ["bad-0"]
    assert errors[0]["response"]["status_code"] == 400 and errors[0]["response"]["body"]["error"]["message"]
    # priced at half (the provider's batch_discount), totalled on the batch
    assert batch.metadata is not None and float(batch.metadata["gateway_cost_usd"]) > 0
    rows = gateway.wait_rows(
        f"SELECT custom_id, status_code, cost_usd FROM requests FINAL WHERE batch_id = '{batch.id}'",
        lambda rows: len(rows) >= n + 1, timeout_s=30)
    assert sorted(r["custom_id"] for r in rows) == sorted([*(f"req-{i}" for i in range(n)), "bad-0"])
    assert sum(float(r["cost_usd"] or 0) for r in rows) == pytest.approx(float(batch.metadata["gateway_cost_usd"]))
    # the same request interactively costs twice the batch line's (mock-openai's batch_discount: 0.5)
    interactive = acme.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "mail bob@example.com 0"}])
    request_id = interactive.headers["x-gateway-request-id"]
    full = gateway.wait_rows(f"SELECT cost_usd FROM requests FINAL WHERE request_id = '{request_id}'",
                             lambda rows: len(rows) == 1)
    line = next(r for r in rows if r["custom_id"] == "req-0")
    assert float(line["cost_usd"]) == pytest.approx(float(full[0]["cost_usd"]) / 2)


def test_embeddings_batch(acme: openai.OpenAI, tmp_path: Path) -> None:
    file_id = _upload(acme, _lines(5, url="/v1/embeddings", model="text-embedding-3-small"), tmp_path)
    batch = _wait(acme, acme.batches.create(input_file_id=file_id, endpoint="/v1/embeddings",
                                            completion_window="24h").id)
    assert batch.status == "completed" and batch.request_counts and batch.request_counts.completed == 5
    output = _jsonl(acme.files.content(batch.output_file_id or "").read())
    assert all(line["response"]["body"]["object"] == "list" for line in output)


def test_a_file_for_another_endpoint_fails_validation(acme: openai.OpenAI, tmp_path: Path) -> None:
    file_id = _upload(acme, _lines(3), tmp_path)
    batch = _wait(acme, acme.batches.create(input_file_id=file_id, endpoint="/v1/embeddings",
                                            completion_window="24h").id)
    assert batch.status == "failed" and batch.errors and batch.errors.data
    assert batch.errors.data[0].code == "invalid_url" and batch.errors.data[0].line == 1


def test_bad_create_requests(acme: openai.OpenAI, tmp_path: Path) -> None:
    with pytest.raises(openai.NotFoundError):
        acme.batches.create(input_file_id="file-" + "0" * 32, endpoint="/v1/chat/completions",
                            completion_window="24h")
    with pytest.raises(openai.BadRequestError) as caught:
        acme.batches.create(input_file_id="x", endpoint="/v1/completions",  # type: ignore[arg-type]
                            completion_window="24h")
    assert caught.value.code == "unsupported_endpoint"
    with pytest.raises(openai.BadRequestError) as caught:
        acme.batches.create(input_file_id="x", endpoint="/v1/chat/completions",
                            completion_window="1h")  # type: ignore[arg-type]
    assert caught.value.code == "invalid_completion_window"
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello")
    with path.open("rb") as f:
        other = acme.files.create(file=f, purpose="user_data").id
    with pytest.raises(openai.BadRequestError) as caught:
        acme.batches.create(input_file_id=other, endpoint="/v1/chat/completions", completion_window="24h")
    assert caught.value.code == "invalid_file_purpose"


def test_cancel_mid_way_answers_each_line_once(acme: openai.OpenAI, tmp_path: Path) -> None:
    n = 60
    file_id = _upload(acme, _lines(n, text="[[mock latency_ms=400]] slow", prefix="slow"), tmp_path)
    created = acme.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
    deadline = time.monotonic() + 30
    while acme.batches.retrieve(created.id).status != "in_progress" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.6)
    cancelling = acme.batches.cancel(created.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    batch = _wait(acme, created.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    output = _jsonl(acme.files.content(batch.output_file_id).read()) if batch.output_file_id else []
    errors = _jsonl(acme.files.content(batch.error_file_id).read()) if batch.error_file_id else []
    ids = [line["custom_id"] for line in output + errors]
    assert sorted(ids) == sorted(f"slow-{i}" for i in range(n))  # every line answered exactly once
    never_run = [e for e in errors if e["error"] and e["error"]["code"] == "batch_cancelled"]
    assert never_run, "the cancel came mid-way: some lines never ran"
    assert batch.request_counts is not None
    assert batch.request_counts.completed == len(output) and batch.request_counts.completed < n
    with pytest.raises(openai.ConflictError):
        acme.batches.cancel(_wait(acme, acme.batches.create(
            input_file_id=_upload(acme, _lines(1), tmp_path, "one.jsonl"), endpoint="/v1/chat/completions",
            completion_window="24h").id).id)


def test_tenants_and_pages(acme: openai.OpenAI, gateway: RunningGateway, tmp_path: Path) -> None:
    ids = [acme.batches.create(input_file_id=_upload(acme, _lines(1), tmp_path, f"p{i}.jsonl"),
                               endpoint="/v1/chat/completions", completion_window="24h").id for i in range(3)]
    page = acme.batches.list(limit=2)
    assert page.data[0].id == ids[-1] and page.has_more
    assert [b.id for b in page.data] == ids[::-1][:2]
    with _client(gateway, LIMITED_KEY) as globex:
        with pytest.raises(openai.NotFoundError):
            globex.batches.retrieve(ids[0])
        with pytest.raises(openai.NotFoundError):
            globex.batches.cancel(ids[0])
        assert all(b.id not in ids for b in globex.batches.list().data)
    for batch_id in ids:
        assert _wait(acme, batch_id).status == "completed"


def test_anthropic_message_batches(gateway: RunningGateway) -> None:
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=DEMO_KEY, max_retries=0)
    requests: Any = [{"custom_id": f"a-{i}", "params": {"model": "claude-3-5-haiku", "max_tokens": 64,
                                                        "messages": [{"role": "user", "content": f"hi {i}"}]}}
                     for i in range(5)]
    batch = client.messages.batches.create(requests=requests)
    assert batch.id.startswith("msgbatch_") and batch.processing_status == "in_progress"
    deadline = time.monotonic() + 60
    while batch.processing_status != "ended" and time.monotonic() < deadline:
        time.sleep(0.3)
        batch = client.messages.batches.retrieve(batch.id)
    assert batch.processing_status == "ended"
    results = list(client.messages.batches.results(batch.id))
    assert batch.request_counts.succeeded == 5, [r.result for r in results]
    assert sorted(r.custom_id for r in results) == [f"a-{i}" for i in range(5)]
    for r in results:
        assert r.result.type == "succeeded"
        assert r.result.message.model == "claude-3-5-haiku" and r.result.message.content[0].type == "text"
    assert batch.id in [b.id for b in client.messages.batches.list()]
    job_id = "batch_" + batch.id.removeprefix("msgbatch_")  # the engine's id of the Anthropic-facing one
    rows = gateway.wait_rows(f"SELECT endpoint, count() AS n FROM requests FINAL WHERE batch_id = '{job_id}' "
                             "GROUP BY endpoint", lambda rows: sum(r["n"] for r in rows) >= 5)
    assert [(r["endpoint"], r["n"]) for r in rows] == [("messages", 5)]  # recorded as Messages requests
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[{"custom_id": "bad id!", "params": requests[0]["params"]}])
    slow: Any = [{"custom_id": f"s-{i}", "params": {"model": "claude-3-5-haiku", "max_tokens": 16, "messages": [
        {"role": "user", "content": "[[mock latency_ms=400]] slow"}]}} for i in range(40)]
    cancelled = client.messages.batches.cancel(client.messages.batches.create(requests=slow).id)
    assert cancelled.processing_status in ("canceling", "ended")
    deadline = time.monotonic() + 60
    while cancelled.processing_status != "ended" and time.monotonic() < deadline:
        time.sleep(0.3)
        cancelled = client.messages.batches.retrieve(cancelled.id)
    counts = cancelled.request_counts
    assert counts.canceled > 0 and counts.succeeded + counts.canceled + counts.errored == 40
    assert len(list(client.messages.batches.results(cancelled.id))) == 40
    deleted = client.messages.batches.delete(batch.id)
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_async_request_with_a_signed_webhook(gateway: RunningGateway, receiver: tuple[str, type[_Receiver]]) -> None:
    base, handler = receiver
    headers = {"authorization": f"Bearer {DEMO_KEY}", "x-gateway-async": "true",
               "x-gateway-callback-url": f"{base}/hooks/done"}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "async hello"}]}
    with httpx.Client(base_url=gateway.base_url, timeout=30) as http:
        queued = http.post("/v1/chat/completions", json=body, headers=headers)
        assert queued.status_code == 202, queued.text
        job = queued.json()
        assert job["object"] == "async.request" and queued.headers["location"] == f"/v1/async/{job['id']}"
        deadline = time.monotonic() + 60
        answer = http.get(job["url"], headers={"authorization": f"Bearer {DEMO_KEY}"})
        while answer.status_code == 202 and time.monotonic() < deadline:
            time.sleep(0.2)
            answer = http.get(job["url"], headers={"authorization": f"Bearer {DEMO_KEY}"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["object"] == "chat.completion"
        assert "async hello" in answer.json()["choices"][0]["message"]["content"]
        refused = http.post("/v1/chat/completions", json=body,
                            headers={**headers, "x-gateway-callback-url": "http://169.254.169.254/latest"})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "callback_url_not_allowed"
        other = http.get(job["url"], headers={"authorization": f"Bearer {LIMITED_KEY}"})
        assert other.status_code == 404
        anthropic_job = http.post("/v1/messages", json={"model": "claude-3-5-haiku", "max_tokens": 32, "messages": [
            {"role": "user", "content": "hi"}]}, headers={**headers, "anthropic-version": "2023-06-01"})
        assert anthropic_job.status_code == 202
        deadline = time.monotonic() + 60
        got = http.get(anthropic_job.json()["url"], headers={"authorization": f"Bearer {DEMO_KEY}"})
        while got.status_code == 202 and time.monotonic() < deadline:
            time.sleep(0.2)
            got = http.get(anthropic_job.json()["url"], headers={"authorization": f"Bearer {DEMO_KEY}"})
        assert got.status_code == 200 and got.json()["type"] == "message"
    deadline = time.monotonic() + 30
    while len(handler.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    by_id = {orjson.loads(b)["id"]: (h, b) for h, b in handler.received}
    assert job["id"] in by_id
    hook_headers, raw = by_id[job["id"]]
    verify(SECRET.encode(), hook_headers["x-gateway-signature"], hook_headers["x-gateway-webhook-id"], raw,
           now=time.time(), tolerance_s=300)
    payload = orjson.loads(raw)
    assert payload["status"] == "completed" and payload["status_code"] == 200
    assert payload["body"]["object"] == "chat.completion"



def test_the_gateway_batch_cli_end_to_end(gateway: RunningGateway, tmp_path: Path) -> None:
    """``gateway batch submit --watch`` then ``results``, as a person runs them, against the live API."""
    source = tmp_path / "cli.jsonl"
    source.write_bytes(_lines(6, model="any-model-the-cli-rewrites", prefix="cli"))
    env = {**os.environ, "GATEWAY_URL": gateway.base_url, "GATEWAY_API_KEY": DEMO_KEY}
    cli = [sys.executable, "-m", "infra.operator.cli", "batch"]
    submitted = subprocess.run([*cli, "submit", str(source), "--model", "gpt-4o-mini", "--watch"], env=env,
                               capture_output=True, text=True, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    batch_id = submitted.stdout.strip().splitlines()[0]
    assert batch_id.startswith("batch_") and "completed" in submitted.stdout + submitted.stderr
    out = tmp_path / "results.jsonl"
    got = subprocess.run([*cli, "results", batch_id, "-o", str(out)], env=env, capture_output=True, text=True,
                         timeout=60)
    assert got.returncode == 0, got.stderr
    lines = _jsonl(out.read_bytes())
    assert sorted(line["custom_id"] for line in lines) == sorted(f"cli-{i}" for i in range(6))
    assert all(line["response"]["body"]["model"] for line in lines)
    listed = subprocess.run([*cli, "list"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and batch_id in listed.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"custom_id": "x"}\n')
    refused = subprocess.run([*cli, "submit", str(bad)], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "line 1" in refused.stderr.lower()


def test_a_rate_limited_line_backs_off_instead_of_failing(acme: openai.OpenAI, gateway: RunningGateway,
                                                         tmp_path: Path) -> None:
    """Every attempt of the plan answers 429 (two at each of the two targets): an interactive caller gets
    the 429 at once, a batch line waits and tries the plan again, and succeeds."""
    nonce = str(time.time_ns())

    def line(i: int) -> bytes:
        text = f"[[mock fail_times=4 key=rl{nonce}x{i} status=429]] rate limited {i}"
        return orjson.dumps({"custom_id": f"rl-{i}", "method": "POST", "url": "/v1/chat/completions",
                             "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}}) + b"\n"
    with pytest.raises(openai.RateLimitError):
        acme.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": (
            f"[[mock fail_times=4 key=rl{nonce}xi status=429]] interactive")}])
    file_id = _upload(acme, b"".join(line(i) for i in range(3)), tmp_path)
    batch = _wait(acme, acme.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions",
                                            completion_window="24h").id)
    assert batch.status == "completed" and batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (3, 0)
    rows = gateway.wait_rows(f"SELECT attempts FROM requests FINAL WHERE batch_id = '{batch.id}'",
                             lambda rows: len(rows) == 3)
    assert [r["attempts"] for r in rows] == [5, 5, 5]  # four 429s, then the answer
