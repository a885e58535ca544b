"""Each batch line's answer: subjects parsed, the chain's reply turned into a ``LineResult``, and, against
a real nats-server with the GW_BATCH_RESULTS stream, stored once (first answer stands), read back, sealed
at rest, and the chain's ``check`` and final reply answered on a line's reply subject."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from infra.jetstream import BATCH_RESULTS_STREAM
from schemas import control, subjects
from schemas.batches import LineResult
from schemas.control import IngressState, ReplyAck
from schemas.envelope import Reply
from schemas.errors import ErrorInfo
from schemas.sealing import new_key
from schemas.wire import JSONObject, decode, encode
from tests.support.jetstream import jetstream_server
from workers.batch_results import ResultStore, answer_chain, line_result, parse_reply_subject, parse_result_subject

pytestmark = pytest.mark.server  # the store's tests start a nats-server; the parsers are pure

SECRET = "the plaintext answer 4711"
BODY: JSONObject = {"id": "chatcmpl-1", "choices": [{"message": {"role": "assistant", "content": SECRET}}]}
LIMITED = ErrorInfo(status_code=429, type="rate_limit_error", code="rate_limited", message="Slow down.")


def _result(line: int, text: str = SECRET) -> LineResult:
    return LineResult(line=line, custom_id="", request_id=f"req-{line}", status_code=200,
                      body={"choices": [{"message": {"content": text}}]}, cost_usd="0.01", finished_at=1.0)


# -- pure ------------------------------------------------------------------------------------------------

def test_parse_good_subjects() -> None:
    assert parse_reply_subject(subjects.batch_reply_subject("batch_abc", 12)) == ("batch_abc", 12)
    assert parse_reply_subject("gw.reply.batch.async_0f.0") == ("async_0f", 0)
    assert parse_result_subject(subjects.batch_result_subject("batch_abc", 7)) == ("batch_abc", 7)


@pytest.mark.parametrize("subject", [
    "gw.reply.batch.batch_abc", "gw.reply.batch.batch_abc.x", "gw.reply.batch.batch_abc.-1",
    "gw.reply.batch.batch_abc.1.2", "gw.reply.batch.batch_abc.", ""])
def test_parse_malformed_subjects(subject: str) -> None:
    assert parse_reply_subject(subject) is None
    assert parse_result_subject(subject.replace("gw.reply.batch", "gw.batch.result")) is None


def test_a_subject_of_another_prefix_is_not_a_line() -> None:
    assert parse_reply_subject("gw.reply.ingress1.req.3") is None
    assert parse_result_subject("gw.reply.batch.batch_abc.3") is None


def test_line_result_of_a_response() -> None:
    reply = Reply(kind="response", request_id="rid", status=200, body=BODY, cost_usd="0.002")
    result = line_result(3, reply)
    assert (result.line, result.custom_id, result.request_id, result.status_code) == (3, "", "rid", 200)
    assert (result.body, result.error, result.cost_usd) == (BODY, None, "0.002")
    assert result.ok and result.finished_at > 0


def test_line_result_of_an_error() -> None:
    result = line_result(1, Reply(kind="error", request_id="rid", status=200, error=LIMITED, cost_usd="0"))
    assert (result.status_code, result.body, result.error, result.cost_usd) == (429, None, LIMITED, "0")
    assert not result.ok


@pytest.mark.parametrize("reply", [
    Reply(kind="chunk", request_id="rid", seq=2, body=BODY), Reply(kind="end", request_id="rid", seq=3),
    Reply(kind="error", request_id="rid")])
def test_line_result_of_an_odd_reply_is_an_internal_error(reply: Reply) -> None:
    result = line_result(0, reply)
    assert result.status_code == 500 and result.body is None and result.error is not None
    assert (result.error.status_code, result.error.code) == (500, "internal_error")
    assert repr(reply.kind) in result.error.message


# -- against a real JetStream ------------------------------------------------------------------------------

@dataclass
class Results:
    nc: NatsClient
    store: ResultStore


@pytest.fixture
async def results(tmp_path: Path) -> AsyncIterator[Results]:
    async with jetstream_server(tmp_path / "nats", declare=False) as srv:
        await srv.js.add_stream(BATCH_RESULTS_STREAM)
        yield Results(srv.nc, ResultStore(srv.js, new_key()))


async def test_put_stores_once_and_the_first_answer_stands(results: Results) -> None:
    first = _result(0)
    assert await results.store.put("batch_a", first) is True
    assert await results.store.put("batch_a", _result(0, text="a later run")) is False
    assert await results.store.get("batch_a", 0) == first
    assert await results.store.get("batch_a", 1) is None
    assert await results.store.get("batch_b", 0) is None


async def test_all_reads_every_line_of_the_job_only(results: Results) -> None:
    for line in (2, 0, 1):
        await results.store.put("batch_a", _result(line, text=f"line {line}"))
    await results.store.put("batch_b", _result(0, text="another job"))
    assert await results.store.all("batch_a") == {n: _result(n, text=f"line {n}") for n in (0, 1, 2)}
    assert await results.store.all("batch_b") == {0: _result(0, text="another job")}
    assert await results.store.all("batch_none") == {}


class BusyAfterSubscribing:
    """The driver's JetStream, in a process busy for a moment right after it subscribes (a loaded
    machine): by the time it asks its consumer what is pending, the broker has pushed it everything."""

    def __init__(self, js: JetStreamContext) -> None:
        self._js = js

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def subscribe(self, *args: Any, **kwargs: Any) -> Any:
        sub = await self._js.subscribe(*args, **kwargs)
        await asyncio.sleep(0.3)
        return sub


async def test_all_reads_every_answer_even_those_pushed_before_it_asked(results: Results) -> None:
    # Seen in a fresh-clone run: a restarted batch driver read 0 of its job's 21 stored answers, waited
    # for 21 lines already answered, and the batch hung in_progress.
    for n in range(21):
        await results.store.put("batch_r", _result(n, text=f"line {n}"))
    busy = ResultStore(BusyAfterSubscribing(results.store._js), results.store._key)  # type: ignore[arg-type]  # noqa: SLF001
    assert await busy.all("batch_r") == {n: _result(n, text=f"line {n}") for n in range(21)}
    assert await busy.all("batch_none") == {}


async def test_answers_are_sealed_at_rest(results: Results) -> None:
    await results.store.put("batch_a", _result(0))
    raw = await results.nc.jetstream().get_last_msg(subjects.STREAM_BATCH_RESULTS,
                                                    subjects.batch_result_subject("batch_a", 0))
    assert raw.data and raw.data[:1] == b"\x01"
    assert SECRET.encode() not in raw.data and b"req-0" not in raw.data
    assert results.store.open("batch_a", 0, raw.data) == _result(0)


async def _ask(results: Results, line: int, data: bytes, headers: dict[str, str] | None = None,
               ) -> tuple[tuple[str, LineResult] | None, bytes]:
    """Send ``data`` to the line's reply subject as the chain does, answer it with ``answer_chain``."""
    sub = await results.nc.subscribe(subjects.batch_reply_subject("batch_a", line))
    try:
        asked = asyncio.create_task(results.nc.request(subjects.batch_reply_subject("batch_a", line), data,
                                                       timeout=5, headers=headers))
        stored = await answer_chain(await sub.next_msg(timeout=5), results.store)
        return stored, (await asked).data
    finally:
        await sub.unsubscribe()


async def test_a_check_is_answered_waiting_then_done(results: Results) -> None:
    check = {control.KIND: control.CHECK}
    stored, answer = await _ask(results, 4, b"", check)
    assert stored is None and decode(answer, IngressState) == IngressState(state="waiting")
    await results.store.put("batch_a", LineResult(line=4, custom_id="", request_id="req-4", status_code=429,
                                                  error=LIMITED))
    stored, answer = await _ask(results, 4, b"", check)
    assert stored is None and decode(answer, IngressState) == IngressState(state="done", status=429, error=LIMITED)


async def test_a_final_reply_is_stored_then_confirmed(results: Results) -> None:
    reply = Reply(kind="response", request_id="req-5", body=BODY, cost_usd="0.003")
    stored, answer = await _ask(results, 5, encode(reply))
    assert decode(answer, ReplyAck) == ReplyAck(state="ok")
    assert stored is not None and stored[0] == "batch_a"
    assert (stored[1].line, stored[1].body, stored[1].cost_usd) == (5, BODY, "0.003")
    assert await results.store.get("batch_a", 5) == stored[1]
    again, answer = await _ask(results, 5, encode(Reply(kind="response", request_id="req-5", body={"x": 1})))
    assert again is None and decode(answer, ReplyAck) == ReplyAck(state="ok")  # confirmed, not stored again
    assert await results.store.get("batch_a", 5) == stored[1]


async def test_a_chunk_on_a_reply_subject_is_not_stored(results: Results) -> None:
    sub = await results.nc.subscribe(subjects.batch_reply_subject("batch_a", 6))
    await results.nc.publish(subjects.batch_reply_subject("batch_a", 6),
                             encode(Reply(kind="chunk", request_id="req-6", body=BODY)))
    assert await answer_chain(await sub.next_msg(timeout=5), results.store) is None
    await sub.unsubscribe()
    assert await results.store.get("batch_a", 6) is None
