"""The official ``anthropic`` SDK's ``messages.batches`` client, pointed at a mock transport that plays a tiny
batch engine with our translations: what it sends we accept, what we answer it reads (create, retrieve,
list across pages, cancel, and the results ``.jsonl`` from ``results_url``)."""

from __future__ import annotations

from typing import Any

import anthropic
import orjson

from ingress.anthropic_surface.batches import (
    batch_object,
    from_anthropic_id,
    list_page,
    parse_create,
    result_line,
    to_anthropic_id,
)
from schemas.batch_input import BatchLine

try:  # anthropic ≥ 2.x speaks httpx2 and refuses httpx objects; older releases use httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx  # type: ignore[no-redef]

BASE = "http://gateway.test"
CREATED = 1_724_179_044


class FakeEngine:
    """Just enough of an OpenAI batch engine: one batch per create, ended on demand."""

    def __init__(self) -> None:
        self.batches: dict[str, dict[str, Any]] = {}
        self.lines: dict[str, list[BatchLine]] = {}

    def create(self, lines: list[BatchLine]) -> dict[str, Any]:
        batch_id = f"batch_{len(self.batches) + 1:04d}"
        counts = {"total": len(lines), "completed": 0, "failed": 0}
        self.batches[batch_id] = {"id": batch_id, "object": "batch", "status": "validating", "created_at": CREATED,
                                  "expires_at": CREATED + 86_400, "request_counts": counts}
        self.lines[batch_id] = lines
        return self.batches[batch_id]

    def outputs(self, batch_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for n, line in enumerate(self.lines[batch_id]):
            if n == 0:
                completion = {"id": f"chatcmpl-{n}", "object": "chat.completion",
                              "choices": [{"index": 0, "message": {"role": "assistant", "content": "Bonjour"},
                                           "finish_reason": "stop"}],
                              "usage": {"prompt_tokens": 9, "completion_tokens": 2}}
                response = {"status_code": 200, "request_id": "r0", "body": completion}
                out.append({"id": f"br_{n}", "custom_id": line.custom_id, "response": response, "error": None})
            else:
                error = {"code": "batch_cancelled", "message": "Batch was cancelled."}
                out.append({"id": f"br_{n}", "custom_id": line.custom_id, "response": None, "error": error})
        return out


def client(engine: FakeEngine) -> anthropic.Anthropic:
    def respond(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/messages/batches":
            return httpx.Response(200, json=batch_object(engine.create(parse_create(request.content)), base_url=BASE))
        if request.method == "GET" and path == "/v1/messages/batches":
            return httpx.Response(200, json=page(engine, request.url.params.get("after_id")))
        batch_id = from_anthropic_id(path.split("/")[4])
        batch = engine.batches[batch_id]
        if path.endswith("/cancel"):
            batch.update(status="cancelled", cancelling_at=CREATED + 5, cancelled_at=CREATED + 6,
                         request_counts={**batch["request_counts"], "completed": 1})
            return httpx.Response(200, json=batch_object(batch, base_url=BASE))
        if path.endswith("/results"):
            models = {line.custom_id: line.body["model"] for line in engine.lines[batch_id]}
            jsonl = b"".join(orjson.dumps(result_line(out, model=models[out["custom_id"]])) + b"\n"
                             for out in engine.outputs(batch_id))
            return httpx.Response(200, content=jsonl, headers={"content-type": "application/binary"})
        return httpx.Response(200, json=batch_object(batch, base_url=BASE))

    http = httpx.Client(transport=httpx.MockTransport(respond))
    return anthropic.Anthropic(base_url=BASE, api_key="x", http_client=http, max_retries=0)


def page(engine: FakeEngine, after_id: str | None) -> dict[str, Any]:
    """One batch per page, newest first, as Anthropic lists them."""
    ids = sorted(engine.batches, reverse=True)
    start = ids.index(from_anthropic_id(after_id)) + 1 if after_id else 0
    chunk = ids[start:start + 1]
    objects = [batch_object(engine.batches[i], base_url=BASE) for i in chunk]
    first, last = (to_anthropic_id(chunk[0]), to_anthropic_id(chunk[-1])) if chunk else (None, None)
    return list_page(objects, has_more=start + 1 < len(ids), first_id=first, last_id=last)


def request(custom_id: str, text: str) -> Any:
    return {"custom_id": custom_id, "params": {"model": "claude-x", "max_tokens": 32,
                                               "messages": [{"role": "user", "content": text}]}}


def test_the_sdk_creates_retrieves_lists_cancels_and_reads_results() -> None:
    engine = FakeEngine()
    sdk = client(engine)

    created = sdk.messages.batches.create(requests=[request("first", "hello"), request("second", "bye")])
    assert created.id == "msgbatch_0001" and created.processing_status == "in_progress"
    assert created.request_counts.processing == 2 and created.results_url is None
    assert [line.body["messages"] for line in engine.lines["batch_0001"]] == [
        [{"role": "user", "content": "hello"}], [{"role": "user", "content": "bye"}]]
    sdk.messages.batches.create(requests=[request("only", "x")])

    listed = [batch.id for batch in sdk.messages.batches.list()]  # follows after_id across pages
    assert listed == ["msgbatch_0002", "msgbatch_0001"]

    canceled = sdk.messages.batches.cancel("msgbatch_0001")
    assert canceled.processing_status == "ended"
    assert canceled.request_counts.succeeded == 1 and canceled.request_counts.canceled == 1
    assert canceled.cancel_initiated_at is not None and canceled.ended_at is not None
    assert canceled.results_url == "http://gateway.test/v1/messages/batches/msgbatch_0001/results"

    retrieved = sdk.messages.batches.retrieve("msgbatch_0001")
    assert retrieved.model_dump() == canceled.model_dump()

    results = {item.custom_id: item.result for item in sdk.messages.batches.results("msgbatch_0001")}
    first = results["first"]
    assert first.type == "succeeded"
    assert first.message.model == "claude-x" and first.message.content[0].type == "text"
    assert first.message.content[0].text == "Bonjour"
    assert first.message.usage.output_tokens == 2
    assert results["second"].type == "canceled"
