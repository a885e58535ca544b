"""Each batch line's answer in ``GW_BATCH_RESULTS``: stored once, read back, and the chain's questions
about a line answered.

The chain answers a batch line as it answers any request: the output filter (or whichever stage ends
it) sends the final reply to the line's ``reply_to``, ``gw.reply.batch.<job>.<line>``, as a request, and
acks the line in ``GW_REQ`` only once that is confirmed. Any live batch replica takes it (queue group),
stores it here and only then confirms: the answer is durable before the chain lets go of the line.
The subject holds one message (the stream keeps one per subject, and a store is conditional on the
subject being empty), so a line that ran twice keeps its first answer. A rerun asking after a line
(``check``) is told ``done`` once its answer is stored, else ``waiting``.

What is stored is sealed under the envelope key like every body at rest (``schemas/sealing.py``), bound
to its job and line.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from schemas import control, subjects
from schemas.batches import LineResult
from schemas.control import IngressState, ReplyAck
from schemas.envelope import Reply
from schemas.errors import InternalError
from schemas.sealing import open_sealed, seal
from schemas.wire import decode, encode

log = logging.getLogger("gateway.batch")

EXPECTED_LAST_SUBJECT_SEQUENCE = "Nats-Expected-Last-Subject-Sequence"
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code: the subject already holds a message
READ_TIMEOUT_S = 5.0

_LINE = re.compile(r"^[0-9]{1,9}$")
_OK = encode(ReplyAck())
_WAITING = encode(IngressState(state="waiting"))


def _aad(job_id: str, line: int) -> bytes:
    return f"{job_id}/{line}".encode()


def parse_reply_subject(subject: str) -> tuple[str, int] | None:
    """``gw.reply.batch.<job>.<line>`` → (job, line); None for anything else."""
    prefix, _, rest = subject.rpartition(".")
    job_prefix, _, job = prefix.rpartition(".")
    if job_prefix != subjects.BATCH_REPLY_PREFIX or not job or not _LINE.match(rest):
        return None
    return job, int(rest)


def parse_result_subject(subject: str) -> tuple[str, int] | None:
    """``gw.batch.result.<job>.<line>`` → (job, line)."""
    prefix, _, rest = subject.rpartition(".")
    job_prefix, _, job = prefix.rpartition(".")
    if job_prefix != subjects.BATCH_RESULT_PREFIX or not job or not _LINE.match(rest):
        return None
    return job, int(rest)


class ResultStore:
    def __init__(self, js: JetStreamContext, key: bytes) -> None:
        self._js = js
        self._key = key

    def open(self, job_id: str, line: int, data: bytes) -> LineResult:
        return decode(open_sealed(data, self._key, aad=_aad(job_id, line)), LineResult)

    async def put(self, job_id: str, result: LineResult) -> bool:
        """Store a line's answer; False when the line already had one (that one stands)."""
        data = seal(encode(result), self._key, aad=_aad(job_id, result.line))
        try:
            await self._js.publish(subjects.batch_result_subject(job_id, result.line), data,
                                   headers={EXPECTED_LAST_SUBJECT_SEQUENCE: "0"})
        except BadRequestError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                return False
            raise
        return True

    async def get(self, job_id: str, line: int) -> LineResult | None:
        try:
            msg = await self._js.get_last_msg(subjects.STREAM_BATCH_RESULTS,
                                              subjects.batch_result_subject(job_id, line))
        except NotFoundError:
            return None
        return self.open(job_id, line, msg.data or b"")

    async def all(self, job_id: str) -> dict[int, LineResult]:
        """Every stored answer of a job, by line (read once, in stream order)."""
        sub = await self._js.subscribe(subjects.batch_result_subject(job_id, "*"), ordered_consumer=True,
                                       stream=subjects.STREAM_BATCH_RESULTS)
        found: dict[int, LineResult] = {}
        try:
            # what it holds for us: the part already pushed to us counts too (a busy process asks late,
            # when the broker has sent some or all of it: a driver once read 0 of 21 stored answers)
            info = await sub.consumer_info()
            pushed = (info.delivered.consumer_seq or 0) if info.delivered is not None else 0
            stored = (info.num_pending or 0) + pushed
            read = 0
            while read < stored:
                msg = await sub.next_msg(timeout=READ_TIMEOUT_S)
                read += 1
                parsed = parse_result_subject(msg.subject)
                if parsed is not None:
                    found[parsed[1]] = self.open(job_id, parsed[1], msg.data)
                if msg.metadata.num_pending == 0:
                    break
        finally:
            await sub.unsubscribe()
        return found

    async def purge(self, job_id: str) -> None:
        """Drop a finished job's answers (its output and error files hold them now)."""
        await self._js.purge_stream(subjects.STREAM_BATCH_RESULTS,
                                    subject=subjects.batch_result_subject(job_id, "*"))


def line_result(line: int, reply: Reply) -> LineResult:
    """The stored form of the chain's final reply to a line (its custom id is filled in from the input
    file when the job's files are written)."""
    error = reply.error
    if reply.kind not in ("response", "error") or (reply.kind == "error" and error is None):
        error = InternalError(f"unexpected reply kind {reply.kind!r} for a batch line").info()
    status = error.status_code if error is not None else reply.status
    return LineResult(line=line, custom_id="", request_id=reply.request_id, status_code=status,
                      body=reply.body if error is None else None, error=error, cost_usd=reply.cost_usd,
                      finished_at=time.time(), provider_ms=reply.provider_ms)


async def answer_chain(msg: Msg, results: ResultStore, respond: bool = True,
                       ended: Callable[[str], Awaitable[bool]] | None = None) -> tuple[str, LineResult] | None:
    """The chain's message on a line's reply subject: a rerun's ``check``, or the line's final answer
    (stored, then confirmed). Returns (job, result) when an answer was stored now. ``ended``: whether a
    job has ended (its answers are in its files, no longer in the stream): a rerun of its line is done."""
    parsed = parse_reply_subject(msg.subject)
    if parsed is None:
        return None
    job_id, line = parsed
    headers = msg.headers
    if headers is not None and headers.get(control.KIND) == control.CHECK:
        stored = await results.get(job_id, line)
        if msg.reply:
            if stored is None and ended is not None and await ended(job_id):
                state = encode(IngressState(state="done", status=200))
            elif stored is None:
                state = _WAITING
            else:
                state = encode(IngressState(state="done", status=stored.status_code, error=stored.error))
            await msg.respond(state)
        return None
    reply = decode(msg.data, Reply)
    if reply.kind == "chunk":  # batch lines are never streamed: nothing to keep
        return None
    result = line_result(line, reply)
    stored_now = await results.put(job_id, result)
    if msg.reply and respond:
        await msg.respond(_OK)
    return (job_id, result) if stored_now else None
