"""Output-filter worker: the last hop. Filters the answer (PII the model produced that the input did
not contain, blocked patterns), runs the output guardrails, restores the request's placeholders,
answers the caller, records the request with every verdict, acks it.

Each request runs with its guardrail profile (``envelope.guardrail_profile``, resolved by the redaction
stage): that profile's ``output_filter`` settings, a PII scanner built for them (``output_scanners.py``:
one per distinct scanner settings, shared by the profiles that have the same; rebuilt in a thread on hot
reload), and one ``GuardrailSet`` per (config version, profile) for the output guardrails.

Whole answers: handed over by the provider stage on ``gw.resp.filter``, confirmed at once ("taken":
this replica holds the request from then on), then the filter, then the output guardrails on the text
the caller would receive (redact outcomes rewrite it; a block ends the request with 400
``content_blocked`` / ``guardrail_blocked``).

Streams: the provider stage asks the ``gw.resp.filter.open`` queue group for a replica (request/reply
with the opening envelope); the replica that answers returns its own subject and receives every piece of
that stream there, in order, so a PII value split across chunks meets one hold-back window. The same
subject answers the provider's pings (``status``: the next piece expected) and ingress's ``resend``
requests (every chunk sent is kept until the end is confirmed); the last piece is answered once this
replica holds the end of the request. A replica given a stream's pieces again from the first (another
one died) produces the very same chunks. Output
guardrails run once, on the whole streamed text, when the provider's stream ends: the text still held
back (the tail that could still have become part of a value), the finishing chunk and the usage are held
until they have passed. Everything before that is
already with the caller, so a ``block`` there can only end the stream with an in-band error (the text
already sent stays sent) and a ``redact`` cannot rewrite it (recorded as ``flag``). For checks of the
whole answer, such as ``response_format`` on streamed JSON, ``flag`` is the sensible action: it records
the verdict without cutting a stream the caller has mostly received.

Every request that reaches this stage leaves the output filter's own verdict (outcome pass, redact,
flag or block; findings as counts) plus the guardrail set's verdicts on the envelope it ends with, so
they reach the ``RequestCompleted`` record on success and on failure alike.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.msg import Msg

from infra.derived import Derived
from schemas import control, subjects
from schemas.config import Guardrails
from schemas.control import Resend, StreamAck
from schemas.envelope import Envelope, Reply, StreamPiece
from schemas.errors import GatewayError
from schemas.events import EventType, StageAttrs
from schemas.ids import uuid7
from schemas.wire import JSONObject, decode, encode, json_list, json_object, replace
from stages.answers import answer_text, rewrite_response, stored_answer, streamed_verdicts
from stages.cache import Entry, streamed_answer
from stages.guardrails.base import Subject
from stages.guardrails.runner import GuardrailSet
from stages.output_filter import InputValues, StreamFilter, filter_response, filter_verdict
from stages.redaction import conceal
from stages.semantic_cache import index_record
from stages.timing import elapsed_ms, with_stage_time
from stages.vault import unseal
from workers import output_scanners
from workers.app import main
from workers.context import WorkerContext
from workers.guardrail_sets import GuardrailSets, profile_of
from workers.output_scanners import OutputScanners, derive_scanners, scanner_settings, warm
from workers.response_cache import ResponseCache
from workers.worker import StageWorker

STAGE = "output_filter"
log = logging.getLogger("gateway.output_filter")
SESSION_IDLE_S = 30.0
"""A stream whose provider stage said nothing this long (no piece, no ping: it pings every
``PING_EVERY_S``) is forgotten here; JetStream reruns the request if its provider stage died."""
ENDED_KEPT_S = 60.0


@dataclass
class StreamSession:
    envelope: Envelope
    mapping: dict[str, str]
    filter: StreamFilter
    guardrails: GuardrailSet
    started: float
    out_seq: int = 0
    next_piece: int = 0
    filter_ms: float = 0.0
    open_choices: set[int] = field(default_factory=set)
    text: list[str] = field(default_factory=list)  # what the caller received, every choice
    answers: dict[int, list[str]] = field(default_factory=dict)  # the same, per choice
    # The chunk that finished the last choice waits for the end, to carry the usage.
    held_finish: dict[str, Any] | None = None
    # every reply sent to the caller, encoded, by seq: what ingress may ask to have again
    sent: list[bytes] = field(default_factory=list)
    last_seen: float = field(default_factory=time.monotonic)
    first_content_at: float | None = None  # wall clock: when the caller was sent its first content
    calls: bool = False  # the answer has tool calls
    finishes: dict[int, str] = field(default_factory=dict)  # each choice's finish reason

    def timed(self, envelope: Envelope) -> Envelope:
        """``envelope`` with what the gateway added to the caller's time to first token."""
        if self.first_content_at is None:
            return envelope
        caller_ms = (self.first_content_at - envelope.received_at) * 1000
        return replace(envelope, ttfb_added_ms=round(max(0.0, caller_ms - (envelope.ttfb_ms or 0.0)), 3))


class OutputFilterWorker(StageWorker):
    name = STAGE
    subject = subjects.RESP_FILTER  # whole answers; streams open on RESP_FILTER_OPEN, same queue group

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        self.key = ctx.settings.sealing_key()
        # (version, config, scanners), rebuilt in a thread when a profile's scanner settings change and
        # swapped when ready (hot reload); the guardrail sets follow the scanners' version. Streams
        # already open keep the filter and guardrails they were opened with.
        self.scanners = derive_scanners().follow(ctx.live)
        self.cache = ResponseCache(lambda: self.runtime.nc)
        self.cache_index = ResponseCache(lambda: self.runtime.nc, subjects.BUCKET_CACHE_INDEX)
        self.extra_scanners: dict[str, OutputScanners] = {}
        self.guardrail_sets = Derived(GuardrailSets.of)
        self.sessions: dict[str, StreamSession] = {}
        self.ended: dict[str, float] = {}  # streams this replica ended, for late pings (request id -> when)
        # this replica's own subject: the pieces of the streams it takes, and questions about them
        self.instance_subject = f"{subjects.RESP_FILTER_INSTANCE}.{uuid7().replace('-', '')}"
        ctx.gauges["output_filter.streams"] = lambda: len(self.sessions)
        ctx.subscribe(ctx.hop(subjects.RESP_FILTER_OPEN), self.on_open,
                      queue=subjects.QUEUE_GROUPS[subjects.RESP_FILTER])

    async def prepare(self) -> None:
        warm(self.scanners.current.value)

    async def after_start(self) -> None:
        await self.ctx.nc.subscribe(self.instance_subject, cb=self.on_instance)

    # -- messages --------------------------------------------------------------------------------

    async def on_message(self, msg: Msg) -> None:
        """A whole answer, handed over by the provider stage: held from now on, then confirmed ("taken")
        so the provider stage lets go of it (it sends it again if this confirmation never comes)."""
        self.runtime.accept(msg.data, self.work)
        if msg.reply:
            await self.ctx.nc.publish(msg.reply, b"")

    async def on_open(self, msg: Msg) -> None:
        """A stream's opening: take it, and tell the provider stage where to send its pieces."""
        try:
            self.open(decode(msg.data, Envelope))
        except Exception:  # noqa: BLE001 - unanswered: the provider stage asks another replica
            log.exception("could not take a stream")
            return
        if msg.reply:
            await self.ctx.nc.publish(msg.reply, self.instance_subject.encode())

    async def on_instance(self, msg: Msg) -> None:
        """This replica's own subject: the pieces of its streams in order, and questions about them."""
        kind = msg.headers.get(control.KIND) if msg.headers else None
        try:
            if kind == control.PING:
                answer: StreamAck | None = self.status(msg.data.decode())
            elif kind == control.RESEND:
                request = decode(msg.data, Resend)
                await self.resend(request.request_id, request.from_seq)
                answer = None
            else:
                answer = await self.piece(decode(msg.data, StreamPiece))
        except Exception:  # noqa: BLE001 - one bad message must not stop the subscription
            log.exception("stream message on %s failed", msg.subject)
            return
        if msg.reply and answer is not None:
            await self.ctx.nc.publish(msg.reply, encode(answer))

    # -- profiles --------------------------------------------------------------------------------

    def profile(self, envelope: Envelope) -> tuple[Guardrails, OutputScanners]:
        built = self.scanners.current
        profile = profile_of(built.config, envelope)
        scanners = built.value.get(profile.profile) or self.scanners_for(profile, built.value)
        return profile, scanners

    def scanners_for(self, profile: Guardrails, active: dict[str, OutputScanners]) -> OutputScanners:
        """The scanners of a profile only a ``GW_KEYS`` key names (no config key or model alias does, so
        it is not among the active ones built ahead): one of ``active`` with the same settings, else
        built on first use, once per distinct settings (presidio's analyzer is shared per process, so a
        pattern profile costs little; one needing spaCy loads it then)."""
        settings = scanner_settings(profile)
        found = self.extra_scanners.get(settings)
        if found is None:
            config = self.scanners.current.config
            found = next((active[name] for name, p in config.active_profiles.items()
                          if name in active and scanner_settings(p) == settings), None) \
                or output_scanners.build_scanner(profile)
            self.extra_scanners[settings] = found
        return found

    def guardrail_set(self, profile: Guardrails) -> GuardrailSet:
        built = self.scanners.current  # the version the scanners serve
        return self.guardrail_sets.get(built.version, built.config).get(profile)

    def _mapping(self, envelope: Envelope) -> dict[str, str]:
        return unseal(envelope.vault, self.key, aad=envelope.request_id.encode()) if envelope.vault else {}

    # -- whole answers ---------------------------------------------------------------------------

    async def work(self, envelope: Envelope, started: float) -> None:
        assert envelope.response is not None
        if envelope.endpoint == "embeddings":  # vectors: nothing to filter, and too big to keep
            data = json_list(envelope.response.get("data"))
            out = self.runtime.event(with_stage_time(envelope, STAGE, started), EventType.RESPONSE_PASSED, started)
            first = json_object(data[0]).get("embedding") if data else None  # a list, or base64 text
            summary: JSONObject = {"object": "list", "count": len(data),
                       "dimensions": len(first) if isinstance(first, list | str) else 0}
            await self.runtime.finish(out, status=200, body=envelope.response, stored_response=summary)
            return
        profile, scanners = self.profile(envelope)
        mapping = self._mapping(envelope)
        filter_started = time.perf_counter()
        result = filter_response(envelope.response, mapping=mapping, scanner=scanners.full,
                                 config=profile.output_filter, restore=profile.redaction.restore,
                                 known=InputValues(envelope.body, mapping))
        verdicts = [*envelope.verdicts, filter_verdict(result.findings, result.redactions,
                                                       result.blocked is not None, elapsed_ms(filter_started))]
        if result.blocked is not None:
            out = with_stage_time(envelope, STAGE, started, output_findings=result.findings, verdicts=verdicts)
            await self.runtime.fail(out, result.blocked, started, EventType.RESPONSE_BLOCKED)
            return
        outcome = self.guardrail_set(profile).run(Subject(
            phase="output", request=envelope.body, answer=answer_text(result.response),
            response=result.response, tenant=envelope.tenant or "", api_key_id=envelope.api_key_id or "",
            model=envelope.model_requested))
        verdicts += outcome.verdicts
        out = with_stage_time(envelope, STAGE, started, output_findings=result.findings, verdicts=verdicts)
        if outcome.blocked is not None:
            await self.runtime.fail(out, outcome.blocked, started, EventType.RESPONSE_BLOCKED)
            return
        response = rewrite_response(result.response, outcome.rewrites)
        out = self.runtime.event(out, EventType.RESPONSE_FILTERED, started, attrs=StageAttrs(findings=result.findings))
        stored = stored_answer(response, mapping)
        await self.runtime.finish(out, status=200, body=response, stored_response=stored)
        await self.remember(out, stored)

    # -- streams ---------------------------------------------------------------------------------

    def open(self, envelope: Envelope) -> None:
        """Take a stream (a new one, or one another replica held and lost: it is replayed from its
        first piece, and this replica produces the same chunks, which ingress de-duplicates by seq)."""
        self.sweep()
        profile, scanners = self.profile(envelope)
        mapping = self._mapping(envelope)
        self.sessions[envelope.request_id] = StreamSession(
            envelope=envelope,
            mapping=mapping,
            filter=StreamFilter(mapping, scanners.full, profile.output_filter, profile.redaction.restore,
                                known=InputValues(envelope.body, mapping), fast_scanner=scanners.fast),
            guardrails=self.guardrail_set(profile),
            started=time.perf_counter(),
        )
        self.ended.pop(envelope.request_id, None)

    def sweep(self, now: float | None = None) -> None:
        """Forget streams whose provider stage went silent (it died: JetStream reruns the request) or
        whose deadline passed, and ended streams past any late question about them."""
        now = time.monotonic() if now is None else now
        wall = time.time()
        for rid in [r for r, s in self.sessions.items()
                    if now - s.last_seen > SESSION_IDLE_S or s.envelope.deadline < wall]:
            del self.sessions[rid]
        for rid in [r for r, t in self.ended.items() if now - t > ENDED_KEPT_S]:
            del self.ended[rid]

    def status(self, request_id: str) -> StreamAck:
        """Where a stream stands here: the next piece expected, or taken (this replica ended it)."""
        if request_id in self.ended:
            return StreamAck(taken=True)
        session = self.sessions.get(request_id)
        if session is None:
            return StreamAck(next=None)
        session.last_seen = time.monotonic()
        return StreamAck(next=session.next_piece)

    async def resend(self, request_id: str, from_seq: int) -> None:
        """Ingress missed chunks (a broker restart dropped them): send them again, in order."""
        session = self.sessions.get(request_id)
        if session is None:  # ended: the end's confirmation carries any resend (see ``_resender``)
            return
        for data in session.sent[from_seq:]:
            await self.runtime.nc.publish(session.envelope.reply_to, data)

    async def _emit(self, session: StreamSession, chunk: dict[str, Any]) -> None:
        envelope = session.envelope
        # the first chunk carries the rate limits: ingress sends the headers before it
        first = not session.out_seq  # it carries what ingress sends as headers before it
        ratelimit = envelope.admission.ratelimit if envelope.admission is not None and first else None
        reply = Reply(kind="chunk", request_id=envelope.request_id, delivery=envelope.delivery,
                      seq=session.out_seq, body=chunk, ttfb_ms=envelope.ttfb_ms, src=self.instance_subject,
                      ratelimit=ratelimit, cache=envelope.cache if first else "",
                      cache_age_s=envelope.cache_age_s if first else None,
                      cache_similarity=envelope.cache_similarity if first else None)
        session.out_seq += 1
        if session.first_content_at is None and any(
                (c.get("delta") or {}).get("content") for c in chunk.get("choices") or ()):
            session.first_content_at = time.time()
        data = encode(reply)
        session.sent.append(data)
        await self.runtime.nc.publish(envelope.reply_to, data)
        await asyncio.sleep(0)

    async def piece(self, piece: StreamPiece) -> StreamAck:
        """One piece of a stream, in order; the answer says where the stream stands after it (the last
        piece is answered once this replica holds the end of the request)."""
        session = self.sessions.get(piece.request_id)
        if session is None:
            return self.status(piece.request_id)
        session.last_seen = time.monotonic()
        if piece.seq != session.next_piece:
            return StreamAck(next=session.next_piece)  # a duplicate, or a gap: the provider sends again
        session.next_piece += 1
        try:
            if piece.chunk is not None:
                await self._chunk(session, piece.chunk)
            if piece.final is not None:
                await self._end(session, piece.final, piece.error)
                return StreamAck(taken=True)
        except GatewayError as exc:  # a block action in the stream: end it in-band
            self._ended(piece.request_id)
            base = session.timed(piece.final or session.envelope)
            envelope = replace(base, output_findings=session.filter.findings,
                               verdicts=[*base.verdicts, session.filter.verdict(session.filter_ms)])
            await self.runtime.fail(envelope, exc, session.started, EventType.RESPONSE_BLOCKED)
            return StreamAck(taken=True)
        return StreamAck(next=session.next_piece)

    def _ended(self, request_id: str) -> None:
        self.sessions.pop(request_id, None)
        self.ended[request_id] = time.monotonic()

    def _push(self, session: StreamSession, index: int, text: str | None) -> str:
        """``text`` through the filter (``None``: the choice ended, flush it), timed."""
        started = time.perf_counter()
        try:
            return session.filter.push(index, text) if text is not None else session.filter.finish(index)
        finally:
            session.filter_ms += elapsed_ms(started)

    @staticmethod
    def _restore_calls(session: StreamSession, index: int, calls: list[Any]) -> list[Any]:
        """Tool-call deltas with the request's placeholders restored in their argument fragments."""
        restored = []
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                arguments = session.filter.push_arguments(index, int(call.get("index", 0)), function["arguments"])
                call = {**call, "function": {**function, "arguments": arguments}}
            restored.append(call)
        return restored

    @staticmethod
    def _received(session: StreamSession, index: int, text: str) -> None:
        session.text.append(text)
        session.answers.setdefault(index, []).append(text)

    async def _chunk(self, session: StreamSession, chunk: dict[str, Any]) -> None:
        if not chunk.get("choices"):
            return  # usage-only chunks: the gateway sends its own at the end
        for choice in chunk["choices"]:
            index = int(choice.get("index", 0))
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = choice["delta"] = {}
            content = delta.get("content")
            if content:
                session.open_choices.add(index)
                delta["content"] = self._push(session, index, content)
            if isinstance(delta.get("tool_calls"), list):
                session.calls = True
                delta["tool_calls"] = self._restore_calls(session, index, delta["tool_calls"])
            if choice.get("finish_reason"):
                session.finishes[index] = str(choice["finish_reason"])
                session.open_choices.discard(index)
                tail = self._push(session, index, None)
                if tail:
                    delta["content"] = (delta.get("content") or "") + tail
                held = session.filter.finish_arguments(index)
                if held:
                    delta["tool_calls"] = [*(delta.get("tool_calls") or ()), *(
                        {"index": call, "function": {"arguments": text}} for call, text in held.items())]
            if delta.get("content"):
                self._received(session, index, delta["content"])
        if not any(self._worth_sending(c) for c in chunk["choices"]):
            return
        if session.held_finish is not None:
            await self._emit(session, session.held_finish)
            session.held_finish = None
        if any(c.get("finish_reason") for c in chunk["choices"]) and not session.open_choices:
            session.held_finish = chunk
        else:
            await self._emit(session, chunk)

    @staticmethod
    def _worth_sending(choice: dict[str, Any]) -> bool:
        delta = choice.get("delta") or {}
        return bool(delta.get("content") or delta.get("role") or delta.get("tool_calls")
                    or choice.get("finish_reason"))

    async def _end(self, session: StreamSession, final: Envelope, error: Any) -> None:
        self._ended(final.request_id)
        tails = []  # held until the output guardrails have passed the whole text
        for index in sorted(session.open_choices):
            tail = self._push(session, index, None)
            if tail:
                self._received(session, index, tail)
                tails.append((index, tail))
        findings = session.filter.findings
        verdicts = [*final.verdicts, session.filter.verdict(session.filter_ms)]
        stored: JSONObject = {"stream": True, "content": conceal("".join(session.text), session.mapping)}
        if error is not None:  # a broken stream: the caller gets the (filtered) text, unchecked as an answer
            for index, tail in tails:
                await self._emit(session, self._content_chunk(final, index, tail))
            out = with_stage_time(final, STAGE, session.started, output_findings=findings, verdicts=verdicts)
            out = self.runtime.event(session.timed(out), EventType.RESPONSE_STREAM_FAILED, session.started,
                                     status="error", attrs=StageAttrs(error_code=error.code))
            await self.runtime.finish(out, status=error.status_code, error=error, stored_response=stored,
                                      resend=self._resender(session))
            return
        answer = "".join(session.answers.get(min(session.answers), [])) if session.answers else ""
        outcome = session.guardrails.run(Subject(
            phase="output", request=final.body, answer=answer, response=None, tenant=final.tenant or "",
            api_key_id=final.api_key_id or "", model=final.model_requested))
        verdicts += streamed_verdicts(outcome)
        out = with_stage_time(final, STAGE, session.started, output_findings=findings, verdicts=verdicts)
        if outcome.blocked is not None:  # in-band error: the finishing chunk and usage never go out
            await self.runtime.fail(session.timed(out), outcome.blocked, session.started, EventType.RESPONSE_BLOCKED)
            return
        for index, tail in tails:
            await self._emit(session, self._content_chunk(final, index, tail))
        usage = None
        if final.usage is not None:
            usage = {"prompt_tokens": final.usage.prompt_tokens, "completion_tokens": final.usage.completion_tokens,
                     "total_tokens": final.usage.total_tokens}
        if session.held_finish is not None:
            # Usage on the finishing chunk for every caller; the separate usage chunk below is OpenAI's
            # own shape for callers that asked for it.
            await self._emit(session, {**session.held_finish, "usage": usage})
            session.held_finish = None
        options = final.body.get("stream_options")
        if usage is not None and isinstance(options, dict) and options.get("include_usage"):
            await self._emit(session, {"id": f"chatcmpl-{final.request_id}", "object": "chat.completion.chunk",
                                       "created": int(final.received_at), "model": final.model_served or "",
                                       "choices": [], "usage": usage})
        end = Reply(kind="end", request_id=out.request_id, delivery=out.delivery, seq=session.out_seq,
                    provider_ms=out.provider_ms, src=self.instance_subject)
        out = self.runtime.event(session.timed(out), EventType.RESPONSE_FILTERED, session.started,
                                 attrs=StageAttrs(findings=findings, chunks=session.out_seq))
        await self.runtime.finish(out, status=200, reply=end, stored_response=stored, resend=self._resender(session))
        if not session.calls:  # a streamed answer with tool calls is not cached (it comes in fragments)
            await self.remember(out, streamed_answer(
                {i: conceal("".join(parts), session.mapping) for i, parts in session.answers.items()},
                session.finishes, out.model_served or ""))

    async def remember(self, envelope: Envelope, answer: JSONObject) -> None:
        """An answer its request may cache (``stages/cache.py``): stored with its placeholders (``answer``
        is the stored copy: no value of the request in it), unless it is larger than allowed."""
        if envelope.cache not in ("miss", "refresh") or not envelope.cache_key or not envelope.cache_max_bytes:
            return
        usage = envelope.usage
        entry = Entry(dict(answer), envelope.provider or "", envelope.model_served or "",
                      usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0,
                      envelope.cost_usd, time.time()).encode()
        if len(entry) > envelope.cache_max_bytes or not await self.cache.put(envelope.cache_key, entry):
            return
        record = index_record(envelope, time.time())
        if record is not None:  # the semantic cache: the question, indexed next to its answer
            await self.cache_index.put(envelope.cache_key, record.encode())

    def _resender(self, session: StreamSession) -> Callable[[int], Awaitable[None]]:
        async def resend(from_seq: int) -> None:
            for data in session.sent[from_seq:]:
                await self.runtime.nc.publish(session.envelope.reply_to, data)
        return resend

    @staticmethod
    def _content_chunk(envelope: Envelope, index: int, text: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{envelope.request_id}", "object": "chat.completion.chunk",
                "created": int(envelope.received_at), "model": envelope.model_served or "",
                "choices": [{"index": index, "delta": {"content": text}, "finish_reason": None}]}


setup = OutputFilterWorker.setup


if __name__ == "__main__":
    main("output_filter")
