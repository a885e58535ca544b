"""Admin API of the mock provider: health, the request recorder and scripted faults."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from infra.doubles.mock_provider.recorder import Recorder
from infra.doubles.mock_provider.server import MockProvider

OPENAI = "/v1/chat/completions"


def openai(text: str = "hi", model: str = "gpt-4o-mini") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


async def test_health(client: httpx.AsyncClient) -> None:
    r = await client.get("/_mock/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "streaming": 0}
    assert (await client.get("/_mock/nope")).status_code == 404


async def test_recorder_records_masks_and_clears(client: httpx.AsyncClient) -> None:
    await client.post(
        OPENAI, json=openai("one"), headers={"Authorization": "Bearer sk-secret", "X-Trace": "t1"}
    )
    await client.post(
        "/v1beta/models/g:generateContent?key=AIza-secret&x=1",
        json={"contents": [{"parts": [{"text": "two"}]}]},
        headers={"x-goog-api-key": "AIza-secret"},
    )
    await client.post("/v1/messages", content=b"{broken", headers={"x-api-key": "sk-ant"})
    await client.get("/_mock/health")  # admin calls are not recorded
    records = (await client.get("/_mock/requests")).json()
    assert [r["path"] for r in records] == [OPENAI, "/v1beta/models/g:generateContent", "/v1/messages"]
    first = records[0]
    assert first["headers"]["authorization"] == "<set>"
    assert first["headers"]["x-trace"] == "t1"
    assert first["body"] == openai("one")
    assert isinstance(first["ts"], float)
    assert records[1]["headers"]["x-goog-api-key"] == "<set>"
    assert "AIza" not in records[1]["query"] and "x=1" in records[1]["query"]
    assert records[2]["headers"]["x-api-key"] == "<set>"
    assert records[2]["body"] == "{broken"
    assert "sk-secret" not in str(records)

    r = await client.delete("/_mock/requests")
    assert r.json() == {"cleared": 3}
    assert (await client.get("/_mock/requests")).json() == []


def test_recorder_is_bounded() -> None:
    recorder = Recorder(limit=3)
    for i in range(5):
        recorder.record("POST", f"/p{i}", b"", [], None)
    assert [r["path"] for r in recorder.snapshot()] == ["/p2", "/p3", "/p4"]


def test_default_record_limit() -> None:
    assert MockProvider().recorder._entries.maxlen == 10_000


def test_recorder_numbers_entries_and_reads_after_a_seq() -> None:
    recorder = Recorder(limit=3)
    for i in range(5):
        recorder.record("POST", f"/p{i}", b"", [], None)
    # seq counts every recorded request (from 1), also those the bound already dropped
    assert [(r["seq"], r["path"]) for r in recorder.snapshot()] == [(3, "/p2"), (4, "/p3"), (5, "/p4")]
    assert [r["seq"] for r in recorder.snapshot(after=3)] == [4, 5]
    assert [r["seq"] for r in recorder.snapshot(after=1)] == [3, 4, 5]  # older than the log: all it has
    assert recorder.snapshot(after=5) == [] and recorder.snapshot(after=99) == []
    assert [r["seq"] for r in recorder.snapshot(after=0)] == [3, 4, 5]
    recorder.clear()
    recorder.record("POST", "/p5", b"", [], None)
    assert [(r["seq"], r["path"]) for r in recorder.snapshot(after=5)] == [(6, "/p5")]  # never reused


async def test_requests_after_seq(client: httpx.AsyncClient) -> None:
    for text in ("one", "two", "three"):
        await client.post(OPENAI, json=openai(text))
    records = (await client.get("/_mock/requests")).json()
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {"seq", "ts", "method", "path", "query", "headers", "body"}
    newer = (await client.get("/_mock/requests", params={"after": 1})).json()
    assert [r["body"] for r in newer] == [openai("two"), openai("three")]
    assert newer == records[1:]
    assert (await client.get("/_mock/requests?after=3")).json() == []
    assert (await client.get("/_mock/requests?after=0")).json() == records
    await client.delete("/_mock/requests")
    await client.post(OPENAI, json=openai("four"))
    assert [r["seq"] for r in (await client.get("/_mock/requests?after=3")).json()] == [4]


@pytest.mark.parametrize("query", ["after=x", "after=-1", "after=1.5", "after="])
async def test_requests_after_must_be_a_seq(client: httpx.AsyncClient, query: str) -> None:
    r = await client.get(f"/_mock/requests?{query}")
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


async def test_scripted_fault_times(client: httpx.AsyncClient) -> None:
    r = await client.post("/_mock/faults", json={"fault": "status=529", "times": 2})
    assert r.status_code == 201
    body = {"model": "claude", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    statuses = [(await client.post("/v1/messages", json=body)).status_code for _ in range(3)]
    assert statuses == [529, 529, 200]
    listing = (await client.get("/_mock/faults")).json()
    assert listing[0]["times"] == 0 and listing[0]["fired"] == 2 and listing[0]["fault"] == "status=529"


async def test_scripted_fault_matches_model(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"fault": "[[mock status=503]]", "model": "gemini-x"})
    gem = {"contents": [{"parts": [{"text": "hi"}]}]}
    assert (await client.post("/v1beta/models/gemini-x:generateContent", json=gem)).status_code == 503
    assert (await client.post("/v1beta/models/gemini-y:generateContent", json=gem)).status_code == 200
    assert (await client.post(OPENAI, json=openai(model="gemini-x"))).status_code == 503


async def test_own_directive_beats_scripted_fault(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"fault": "status=500"})
    assert (await client.post(OPENAI, json=openai("hi [[mock latency_ms=0]]"))).status_code == 200
    assert (await client.post(OPENAI, json=openai(), headers={"x-mock-fault": ""})).status_code == 200
    assert (await client.post(OPENAI, json=openai())).status_code == 500


async def test_scripted_fault_rate_is_seeded(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"fault": "status=429", "rate": 0.3, "seed": 7})
    statuses = [(await client.post(OPENAI, json=openai())).status_code for _ in range(40)]
    rng = random.Random(7)
    expected = [429 if rng.random() < 0.3 else 200 for _ in range(40)]
    assert statuses == expected
    assert 0 < statuses.count(429) < 40


async def test_scripted_fault_rate_and_times_together(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"fault": "status=500", "rate": 1.0, "times": 1})
    await client.post("/_mock/faults", json={"fault": "status=429", "rate": 0.0})
    statuses = [(await client.post(OPENAI, json=openai())).status_code for _ in range(3)]
    assert statuses == [500, 200, 200]


async def test_delete_faults_clears_scripts_and_counters(client: httpx.AsyncClient) -> None:
    await client.post("/_mock/faults", json={"fault": "status=500"})
    fail_once = openai("hi [[mock fail_times=1 key=k]]")
    assert (await client.post(OPENAI, json=fail_once)).status_code == 500
    assert (await client.post(OPENAI, json=fail_once)).status_code == 200
    assert (await client.delete("/_mock/faults")).status_code == 200
    assert (await client.get("/_mock/faults")).json() == []
    assert (await client.post(OPENAI, json=fail_once)).status_code == 500  # counter reset
    assert (await client.post(OPENAI, json=openai())).status_code == 200


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"fault": 5}',
        b'{"fault": "nope=1"}',
        b'{"fault": "status=500", "rate": 2}',
        b'{"fault": "status=500", "times": -1}',
        b'{"fault": "status=500", "model": 3}',
    ],
)
async def test_bad_scripted_fault_is_400(client: httpx.AsyncClient, payload: bytes) -> None:
    r = await client.post("/_mock/faults", content=payload)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert (await client.get("/_mock/faults")).json() == []


async def test_lifespan(mock_app: MockProvider) -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await mock_app({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
