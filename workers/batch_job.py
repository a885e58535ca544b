"""Driving one batch job from its input file to its output and error files.

1. **validating**: the input file is read (it was checked line by line on upload) and every line must
   name the job's endpoint; else the job fails with OpenAI's ``errors`` list.
2. **in_progress**: lines enter the chain in file order through the batch lane (``gw.req.batch``), as
   many at once as the lane gate allows (``stages/batch_lane.py``), each a sealed envelope with its own
   request id (``line_request_id``: the same for every attempt, so ``GW_REQ``'s de-duplication and the
   chain's rerun checks see one request). A line the surface refuses (bad body) is answered here.
   Answers arrive on the results stream (``workers/batch_results.py``); ``dispatched`` and the counts are
   written to the job every half second, so a restarted driver resumes where the last one was: lines
   sent but unanswered are in ``GW_REQ`` or in the chain, and come back by themselves. A line that stays
   unanswered past ``batch_line_timeout_s`` (its answer was lost) is sent again.
3. **cancelling**: no new line is sent; lines in the chain finish; **expired**: the window passed.
4. **finalizing**: every answer is read back in line order into the output file (2xx) and the error
   file (the rest, and the lines never run, ``batch_cancelled``/``batch_expired``), stored in
   ``GW_FILES`` under ids derived from the job (a driver that dies here writes the same files again),
   then the job ends ``completed``, ``cancelled`` or ``expired``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext

from infra.batch_store import BatchStore
from infra.file_store import FileStore
from ingress.surfaces import EMBEDDINGS, OPENAI, Surface
from schemas import subjects
from schemas.batch_input import BatchLine, parse_line
from schemas.batches import (
    CANCELLED_CODE,
    EXPIRED_CODE,
    BatchError,
    BatchJob,
    LineResult,
    line_request_id,
    not_run,
    output_line,
)
from schemas.envelope import Endpoint, Envelope
from schemas.errors import GatewayError, InvalidRequest
from schemas.events import RequestCompleted
from schemas.files import FILE_ID_PREFIX, FileObject, StoredFile
from schemas.ids import uuid7
from schemas.sealed_request import seal_request
from schemas.wire import replace
from stages.batch_lane import LaneGate
from workers.batch_results import ResultStore, parse_result_subject

log = logging.getLogger("gateway.batch")

PROGRESS_EVERY_S = 0.5
LOG_EVERY_S = 10.0
STORE_SETTLE_TRIES = 25
TICK_S = 0.25
OUTPUT_PURPOSE = "batch_output"
_FILES_NAMESPACE = uuid.UUID("0b7e9e57-1e4f-4a53-9a0e-3c1f5f0d2a61")


def derived_file_id(job_id: str, which: str) -> str:
    """The id of a job's output or error file: the same each time it is written."""
    return FILE_ID_PREFIX + uuid.uuid5(_FILES_NAMESPACE, f"{job_id}/{which}").hex


@dataclass
class BatchDeps:
    """What every job's driver shares in one batch process."""

    js: JetStreamContext
    jobs: BatchStore
    files: FileStore
    results: ResultStore
    gate: LaneGate
    key: bytes
    line_timeout_s: float
    record: Callable[[RequestCompleted], None]
    subscribe: Callable[[str, Callable[[Msg], Awaitable[None]]], Awaitable[Subscription]]


@dataclass
class _Progress:
    answered: dict[int, bool] = field(default_factory=dict)  # line -> ok
    cost: Decimal = Decimal(0)
    inflight: dict[int, float] = field(default_factory=dict)  # line -> monotonic time it was sent
    resumed: set[int] = field(default_factory=set)  # sent by an earlier driver: no latency to learn from


class JobDriver:
    def __init__(self, job: BatchJob, deps: BatchDeps) -> None:
        self.job = job
        self.deps = deps
        self.custom_ids: list[str] = []
        self.progress = _Progress()
        self.changed = asyncio.Event()

    # -- the job's life -------------------------------------------------------------------------------

    async def run(self) -> BatchJob:
        job = self.job
        if job.status == "validating" or (job.status == "cancelling" and not job.total):
            # (cancelled before any driver read its file: its lines are still counted, each never run)
            job = await self._validate(job)
        if job.terminal:
            return job
        if not self.custom_ids:
            await self._read_custom_ids(job)
        if job.status in ("in_progress", "cancelling"):
            job = await self._dispatch(job)
        if job.status == "finalizing" or job.status in ("cancelling", "in_progress"):
            job = await self._finalize(job)
        return job

    def updated(self, job: BatchJob) -> None:
        """The job changed in the bucket (e.g. a cancel): the loop reads it at its next turn."""
        self.job = job
        self.changed.set()

    async def _set(self, change: Callable[[BatchJob], BatchJob | None]) -> BatchJob:
        job = await self.deps.jobs.change(self.job.id, change)
        if job is not None:
            self.job = job
        return self.job

    # -- validating ---------------------------------------------------------------------------------

    async def _validate(self, job: BatchJob) -> BatchJob:
        errors: list[BatchError] = []
        ids: list[str] = []
        try:
            async for number, line in self._lines(job):
                if line.url != job.endpoint:
                    errors.append(BatchError(code="invalid_url", line=number + 1, param="url",
                                             message=f"Line {number + 1}: url {line.url!r} does not match the "
                                                     f"batch's endpoint {job.endpoint!r}."))
                    break
                ids.append(line.custom_id)
        except InvalidRequest as exc:
            errors.append(BatchError(code=exc.code or "invalid_file", message=exc.message, param="input_file_id"))
        except _FileGone:
            errors.append(BatchError(code="file_not_found", param="input_file_id",
                                     message=f"The input file {job.input_file_id} no longer exists."))
        now = int(time.time())
        if errors or not ids:
            if not errors:
                errors.append(BatchError(code="empty_file", message="The input file has no lines.",
                                         param="input_file_id"))

            def failed(j: BatchJob) -> BatchJob | None:
                return replace(j, status="failed", failed_at=now, errors=errors) if j.status == "validating" else None
            return await self._set(failed)
        self.custom_ids = ids

        def started(j: BatchJob) -> BatchJob | None:
            if j.status == "validating":
                return replace(j, status="in_progress", in_progress_at=now, total=len(ids))
            return replace(j, total=len(ids)) if j.status == "cancelling" and not j.total else None
        return await self._set(started)

    async def _read_custom_ids(self, job: BatchJob) -> None:
        with contextlib.suppress(_FileGone):
            self.custom_ids = [line.custom_id async for _, line in self._lines(job)]

    async def _lines(self, job: BatchJob, start: int = 0) -> AsyncIterator[tuple[int, BatchLine]]:
        """The input file's lines from ``start`` (0-based), read a chunk at a time."""
        if await self.deps.files.get(job.tenant, job.input_file_id) is None:
            raise _FileGone
        number = 0
        async for raw in self.deps.files.lines(job.tenant, job.input_file_id):
            if number >= start:
                yield number, parse_line(number + 1, raw)
            number += 1

    # -- in progress ----------------------------------------------------------------------------------

    async def _dispatch(self, job: BatchJob) -> BatchJob:
        deps, progress = self.deps, self.progress
        sub = await deps.subscribe(subjects.batch_result_subject(job.id, "*"), self._on_result)
        try:
            for line, result in (await deps.results.all(job.id)).items():
                self._answered(line, result)
            now = time.monotonic()
            for line in range(job.dispatched):
                if line not in progress.answered:
                    progress.inflight[line] = now
                    progress.resumed.add(line)
                    deps.gate.took(job.tenant)
            lines = self._lines(job, job.dispatched)
            exhausted = job.dispatched >= job.total
            dispatched = job.dispatched
            written = logged = 0.0
            while True:
                job = self.job
                cancelling = job.status == "cancelling"
                expired = not cancelling and time.time() >= job.expires_at
                if expired:
                    break
                sent = False
                if not cancelling and not exhausted and deps.gate.room(job.tenant) > 0:
                    delay = deps.gate.window.reserve(time.monotonic())  # paced, never a burst
                    if delay > 0:
                        await asyncio.sleep(delay)
                    nxt = await anext(lines, None)
                    if nxt is None:
                        exhausted = True
                    elif nxt[0] in progress.answered:  # sent by a driver before a restart, answered since
                        dispatched = nxt[0] + 1
                    else:
                        await self._send(job, *nxt)
                        dispatched = nxt[0] + 1
                        sent = True
                if (exhausted or cancelling) and not progress.inflight:
                    break
                self._resend_overdue(job)
                if time.monotonic() - written >= PROGRESS_EVERY_S:
                    job = await self._write_progress(dispatched)
                    written = time.monotonic()
                    if written - logged >= LOG_EVERY_S:
                        logged = written
                        log.info("batch %s: %d/%d lines sent, %d answered (%d failed), %d in flight, window %d",
                                 job.id, dispatched, job.total, len(progress.answered), job.failed,
                                 len(progress.inflight), deps.gate.window.lines)
                if sent:
                    continue
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), TICK_S)
            job = await self._write_progress(dispatched)
            if expired or job.status == "cancelling":  # ended by _finalize: cancelled, or expired (in_progress)
                return job
            return await self._set(lambda j: replace(j, status="finalizing", finalizing_at=int(time.time()))
                                   if j.status == "in_progress" else None)
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
            for _ in progress.inflight:
                deps.gate.done(job.tenant)
            progress.inflight.clear()

    async def _send(self, job: BatchJob, number: int, line: BatchLine) -> None:
        """One line into the batch lane, or answered here when its body is refused."""
        request_id = line_request_id(job.id, number)
        now = time.time()
        try:
            envelope = self._envelope(job, number, line, now)
        except GatewayError as exc:
            info = exc.info()
            result = LineResult(line=number, custom_id=line.custom_id, request_id=request_id,
                                status_code=info.status_code, error=info, finished_at=now)
            await self.deps.results.put(job.id, result)
            self._answered(number, result)
            self.deps.record(RequestCompleted(
                event_id=uuid7(), request_id=request_id, ts=now, finished_at=now, stage="batch",
                endpoint=_endpoint(job), tenant=job.tenant, api_key_id=job.api_key_id,
                model_requested=str(line.body.get("model") or ""), status_code=info.status_code,
                error_type=info.type, error_code=info.code or "", error_message=info.message,
                batch_id=job.id, custom_id=line.custom_id))
            return
        await self._publish(envelope)
        self.progress.inflight[number] = time.monotonic()
        self.deps.gate.took(job.tenant)

    def _envelope(self, job: BatchJob, number: int, line: BatchLine, now: float) -> Envelope:
        """The line as a request of the chain (its body checked by the endpoint's surface, as ingress
        checks a request's); ``GatewayError`` when it is refused."""
        if line.body.get("stream"):
            raise InvalidRequest("stream is not supported in a batch line; remove it.", param="body.stream")
        surface = _surface(job)
        parsed = surface.parse(orjson.dumps(line.body))
        user = parsed.body.get("user")
        return Envelope(
            request_id=line_request_id(job.id, number), received_at=now, deadline=now + self.deps.line_timeout_s,
            reply_to=subjects.batch_reply_subject(job.id, number), endpoint=_endpoint(job), stream=False,
            api_key_hash=job.api_key_hash, body=parsed.body, model_requested=parsed.model,
            user=user if isinstance(user, str) else "", batch_id=job.id, custom_id=line.custom_id)

    async def _publish(self, envelope: Envelope) -> None:
        data, headers = seal_request(envelope, self.deps.key)
        while True:
            try:
                await self.deps.js.publish(subjects.REQ_BATCH, data, headers=headers, timeout=5.0)
                return
            except Exception as exc:  # noqa: BLE001 - the broker restarts: the same message id, again
                log.info("batch line %s not published yet (%r); retrying", envelope.request_id, exc)
                await asyncio.sleep(0.5)

    def _resend_overdue(self, job: BatchJob) -> None:
        """Lines whose answer never came (lost with every batch replica down): sent again, same id."""
        limit = time.monotonic() - self.deps.line_timeout_s - 5.0
        overdue = [line for line, sent in self.progress.inflight.items() if sent < limit]
        for line in overdue:
            self.progress.inflight[line] = time.monotonic()
            asyncio.get_running_loop().create_task(self._resend(job, line))

    async def _resend(self, job: BatchJob, number: int) -> None:
        async for _, line in self._lines(job, number):
            log.warning("batch %s: line %d (%s) unanswered after %.0fs; sent again", job.id, number + 1,
                        line_request_id(job.id, number), self.deps.line_timeout_s)
            await self._publish(self._envelope(job, number, line, time.time()))  # it was accepted before
            return

    async def _on_result(self, msg: Msg) -> None:
        parsed = parse_result_subject(msg.subject)
        if parsed is None or parsed[0] != self.job.id:
            return
        try:
            result = self.deps.results.open(parsed[0], parsed[1], msg.data)
        except Exception:  # noqa: BLE001 - not ours to read: the finaliser reads the stream again
            log.warning("batch %s: an answer on %s could not be opened", self.job.id, msg.subject)
            return
        self._answered(parsed[1], result)
        self.changed.set()

    def _answered(self, line: int, result: LineResult) -> None:
        progress = self.progress
        if line not in progress.answered:
            progress.answered[line] = result.ok
            if result.cost_usd:
                progress.cost += Decimal(result.cost_usd)
        sent = progress.inflight.pop(line, None)
        if sent is not None:
            self.deps.gate.done(self.job.tenant)
            if line not in progress.resumed:
                now = time.monotonic()
                self.deps.gate.window.observe((now - sent) * 1000 - result.provider_ms, now - sent, now)

    async def _write_progress(self, dispatched: int) -> BatchJob:
        answered = self.progress.answered
        ok = sum(1 for v in answered.values() if v)
        cost = str(self.progress.cost)

        def counted(j: BatchJob) -> BatchJob:
            return replace(j, dispatched=max(j.dispatched, dispatched), completed=ok, failed=len(answered) - ok,
                           cost_usd=cost)
        return await self._set(counted)

    # -- finalizing -------------------------------------------------------------------------------------

    async def _finalize(self, job: BatchJob) -> BatchJob:
        """Write the output and error files from the stored answers, and end the job."""
        final = {"cancelling": "cancelled", "finalizing": "completed", "in_progress": "expired",
                 "expired": "expired"}[job.status]
        stored = await self._stored_answers(job)
        code = CANCELLED_CODE if final == "cancelled" else EXPIRED_CODE
        out, err = io.BytesIO(), io.BytesIO()
        ok = failed = 0
        cost = Decimal(0)
        for number in range(job.total):
            custom_id = self.custom_ids[number] if number < len(self.custom_ids) else ""
            result = stored.get(number)
            if result is None:
                result = not_run(job.id, number, custom_id, code)
            else:
                result = replace(result, custom_id=custom_id)
                cost += Decimal(result.cost_usd) if result.cost_usd else Decimal(0)
            target = out if result.ok else err
            if result.ok:
                ok += 1
            else:
                failed += 1
            target.write(orjson.dumps(output_line(result)) + b"\n")
        output_id = await self._store_file(job, "output", out.getvalue())
        error_id = await self._store_file(job, "error", err.getvalue())
        now = int(time.time())
        answered = len(stored)

        def ended(j: BatchJob) -> BatchJob | None:
            if j.terminal and j.status != "expired":
                return None
            stamp = {"completed": {"completed_at": now}, "cancelled": {"cancelled_at": now},
                     "expired": {"expired_at": j.expired_at or now}}[final]
            # OpenAI counts what ran: a cancelled or expired job's lines never run are in neither count
            return replace(j, status=final, output_file_id=output_id, error_file_id=error_id,
                           completed=ok, failed=answered - ok if final != "completed" else failed,
                           cost_usd=str(cost), **stamp)
        job = await self._set(ended)
        if job.terminal:  # the files hold every answer now: the stream need not keep them
            with contextlib.suppress(Exception):
                await self.deps.results.purge(job.id)
        log.info("batch %s %s: %d ok, %d failed of %d lines, $%s", job.id, job.status, ok, job.failed, job.total,
                 job.cost_usd)
        return job

    async def _stored_answers(self, job: BatchJob) -> dict[int, LineResult]:
        """Every stored answer of the job. An answer reaches this driver's subscription as the stream stores
        it, and a consumer made a moment later may not count it yet: read again until every answer this
        driver saw is there (a few seconds at most)."""
        seen = set(self.progress.answered)
        stored = await self.deps.results.all(job.id)
        for _ in range(STORE_SETTLE_TRIES):
            if seen <= stored.keys():
                break
            await asyncio.sleep(0.2)
            stored = await self.deps.results.all(job.id)
        else:
            log.warning("batch %s: %d answered lines not read back from the results stream", job.id,
                        len(seen - stored.keys()))
        return stored

    async def _store_file(self, job: BatchJob, which: str, data: bytes) -> str | None:
        if not data:
            return None
        file = FileObject(id=derived_file_id(job.id, which), bytes=len(data), created_at=int(time.time()),
                          filename=f"{job.id}_{which}.jsonl", purpose=OUTPUT_PURPOSE)
        await self.deps.files.put(StoredFile(tenant=job.tenant, file=file), io.BytesIO(data))
        return file.id


def _surface(job: BatchJob) -> Surface:
    """The surface that checks a line's body (the canonical chat body, or embeddings')."""
    return EMBEDDINGS if job.endpoint == "/v1/embeddings" else OPENAI


def _endpoint(job: BatchJob) -> Endpoint:
    """The endpoint a line is recorded under: Anthropic's Message Batches and async Messages requests are
    ``messages`` (their bodies travel in the canonical shape, like an interactive Messages request's)."""
    if job.kind == "anthropic" or job.surface == "messages":
        return "messages"
    return _surface(job).endpoint


class _FileGone(Exception):
    """The job's input file was deleted."""
