"""One job's driver against a real JetStream (files, jobs and results stores; no chain): a job past its
window ends ``expired`` with every line it never ran in the error file, and a driver that resumes a job
whose every line was answered before it started sends nothing again and finalises it."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import orjson
import pytest
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import StreamConfig

from infra.batch_store import BatchStore
from infra.file_store import FILES_BUCKET, FileStore
from infra.jetstream import BATCH_RESULTS_STREAM, BATCHES_BUCKET
from schemas import subjects
from schemas.batches import BatchJob, LineResult, line_request_id
from schemas.events import RequestCompleted
from schemas.files import FileObject, StoredFile
from schemas.sealing import new_key
from schemas.wire import replace
from stages.batch_lane import LaneGate, LaneWindow
from tests.support.jetstream import JetStreamServer, jetstream_server
from workers.batch_job import BatchDeps, JobDriver

pytestmark = pytest.mark.server

KEY = new_key()
LINES = 3


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[JetStreamServer]:
    async with jetstream_server(tmp_path / "nats", declare=False) as server:
        await server.js.create_key_value(BATCHES_BUCKET)
        await server.js.add_stream(BATCH_RESULTS_STREAM)
        await server.js.add_stream(StreamConfig(name=subjects.STREAM_REQUESTS, subjects=[subjects.REQ_BATCH]))
        await server.js.create_object_store(subjects.BUCKET_FILES, config=FILES_BUCKET)
        yield server


def _deps(srv: JetStreamServer) -> BatchDeps:
    async def subscribe(subject: str, handler: Callable[[Msg], Awaitable[None]]) -> Subscription:
        return await srv.nc.subscribe(subject, cb=handler)

    def record(_: RequestCompleted) -> None:
        return None

    from workers.batch_results import ResultStore

    return BatchDeps(js=srv.js, jobs=BatchStore(srv.js), files=FileStore(srv.js, KEY),
                     results=ResultStore(srv.js, KEY), gate=LaneGate(LaneWindow(8), 8), key=KEY,
                     line_timeout_s=60.0, record=record, subscribe=subscribe)


async def _job(deps: BatchDeps, **fields: object) -> BatchJob:
    data = b"".join(orjson.dumps({"custom_id": f"c-{i}", "method": "POST", "url": "/v1/chat/completions",
                                  "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}) + b"\n"
                    for i in range(LINES))
    file = FileObject(id="file-" + "a" * 32, bytes=len(data), created_at=1, filename="in.jsonl", purpose="batch")
    await deps.files.put(StoredFile(tenant="acme", file=file), io.BytesIO(data))
    now = int(time.time())
    job = replace(BatchJob(id="batch_" + "b" * 32, tenant="acme", api_key_hash="h", endpoint="/v1/chat/completions",
                           input_file_id=file.id, created_at=now, expires_at=now + 3600, total=LINES,
                           status="in_progress"), **fields)
    await deps.jobs.create(job)
    return job


async def _lines(deps: BatchDeps, job: BatchJob, file_id: str | None) -> list[dict[str, object]]:
    if file_id is None:
        return []
    found = await deps.files.content(job.tenant, file_id)
    assert found is not None
    return [orjson.loads(line) for line in b"".join([c async for c in found[1]]).splitlines()]


async def _sent(srv: JetStreamServer) -> int:
    return (await srv.js.stream_info(subjects.STREAM_REQUESTS)).state.messages


async def test_a_job_past_its_window_ends_expired_with_the_lines_it_never_ran(srv: JetStreamServer) -> None:
    deps = _deps(srv)
    job = await _job(deps, expires_at=int(time.time()) - 1)
    ended = await JobDriver(job, deps).run()
    assert ended.status == "expired" and ended.expired_at and ended.output_file_id is None
    errors = await _lines(deps, ended, ended.error_file_id)
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [  # type: ignore[index]
        (f"c-{i}", "batch_expired") for i in range(LINES)]
    assert await _sent(srv) == 0  # nothing entered the chain
    assert (ended.completed, ended.failed) == (0, 0)


async def test_a_job_cancelled_before_it_was_validated_ends_with_every_line_cancelled(srv: JetStreamServer) -> None:
    deps = _deps(srv)
    job = await _job(deps, status="cancelling", total=0, cancelling_at=int(time.time()))
    ended = await JobDriver(job, deps).run()
    assert ended.status == "cancelled" and ended.total == LINES and (ended.completed, ended.failed) == (0, 0)
    errors = await _lines(deps, ended, ended.error_file_id)
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [  # type: ignore[index]
        (f"c-{i}", "batch_cancelled") for i in range(LINES)]
    assert await _sent(srv) == 0


async def test_a_resumed_job_whose_lines_were_all_answered_sends_none_again(srv: JetStreamServer) -> None:
    deps = _deps(srv)
    job = await _job(deps, dispatched=1)  # a driver sent line 0, then died; lines 1-2 were sent unrecorded
    for line in range(LINES):  # ... and every answer was stored meanwhile
        await deps.results.put(job.id, LineResult(line=line, custom_id="", request_id=line_request_id(job.id, line),
                                                  status_code=200, body={"object": "chat.completion"},
                                                  cost_usd="0.5"))
    ended = await JobDriver(job, deps).run()
    assert ended.status == "completed" and (ended.completed, ended.failed) == (LINES, 0)
    assert ended.cost_usd == "1.5"
    output = await _lines(deps, ended, ended.output_file_id)
    assert [o["custom_id"] for o in output] == [f"c-{i}" for i in range(LINES)]
    assert await _sent(srv) == 0  # already answered: not sent again
    assert deps.gate.total == 0


async def test_finalising_waits_for_answers_the_driver_saw_but_the_stream_does_not_show_yet(
        srv: JetStreamServer) -> None:
    """An answer reaches the driver's subscription as it is stored; a consumer made a moment later may not
    count it yet. The files must still hold it, not report its line as never run."""
    deps = _deps(srv)
    job = await _job(deps, status="finalizing", dispatched=LINES)
    driver = JobDriver(job, deps)
    driver.progress.answered = {line: True for line in range(LINES)}  # seen on the subscription

    async def store_late() -> None:
        await asyncio.sleep(0.5)
        for line in range(LINES):
            await deps.results.put(job.id, LineResult(line=line, custom_id="", status_code=200,
                                                      request_id=line_request_id(job.id, line), body={"ok": line}))

    late = asyncio.create_task(store_late())
    ended = await driver.run()
    await late
    assert ended.status == "completed" and (ended.completed, ended.failed) == (LINES, 0)
    assert ended.error_file_id is None
    output = await _lines(deps, ended, ended.output_file_id)
    assert [o["response"]["body"] for o in output] == [{"ok": line} for line in range(LINES)]  # type: ignore[index]
