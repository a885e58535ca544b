"""Output-filter worker: the last hop. Filters the answer (PII the model produced, blocked patterns),
restores the request's placeholders, answers the caller, records the request, acks it.

Streams: the provider stage asks the ``gw.resp.filter`` queue group for a replica (request/reply with
the opening envelope); the replica that answers returns its own subject and receives every piece of
that stream there, in order, so a PII value split across chunks meets one hold-back window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from faststream import AckPolicy
from faststream.nats import NatsBroker

from infra import bootstrap
from infra.settings import Settings
from schemas import subjects
from schemas.config import GatewayConfig
from schemas.envelope import Envelope, Reply, StreamPiece
from schemas.errors import GatewayError
from schemas.ids import uuid7
from stages.output_filter import StreamFilter, filter_response
from stages.pii import PiiScanner
from stages.redaction import conceal
from stages.vault import unseal
from workers.app import Hooks, main
from workers.live_config import Derived
from workers.runtime import StageRuntime, with_stage_time

STAGE = "output_filter"


@dataclass
class StreamSession:
    envelope: Envelope
    mapping: dict[str, str]
    filter: StreamFilter
    started: float
    out_seq: int = 0
    next_piece: int = 0
    open_choices: set[int] = field(default_factory=set)
    text: list[str] = field(default_factory=list)  # what the caller received
    # The chunk that finished the last choice waits for the end, to carry the usage.
    held_finish: dict[str, Any] | None = None


def stored_answer(response: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """The answer as the store may keep it: filtered, with the request's placeholders concealed again."""
    if not mapping:
        return response
    choices = []
    for choice in response.get("choices") or []:
        message = dict(choice.get("message") or {})
        if isinstance(message.get("content"), str):
            message["content"] = conceal(message["content"], mapping)
        choices.append({**choice, "message": message})
    return {**response, "choices": choices}


class OutputFilterStage:
    def __init__(self, runtime: StageRuntime, config: GatewayConfig, scanner: PiiScanner, key: bytes) -> None:
        self.runtime = runtime
        self.key = key
        self.use(config, scanner)
        self.sessions: dict[str, StreamSession] = {}

    def use(self, config: GatewayConfig, scanner: PiiScanner) -> None:
        """Filter with this config and scanner from now on (hot reload); streams already open keep
        the filter they were opened with."""
        self.config = config
        self.scanner = scanner
        self.restore = config.redaction.restore

    def _mapping(self, envelope: Envelope) -> dict[str, str]:
        return unseal(envelope.vault, self.key, aad=envelope.request_id.encode()) if envelope.vault else {}

    # -- whole answers ---------------------------------------------------------------------------

    async def complete(self, envelope: Envelope, started: float) -> None:
        assert envelope.response is not None
        if envelope.endpoint == "embeddings":  # vectors: nothing to filter, and too big to keep
            data = envelope.response.get("data") or []
            out = self.runtime.event(with_stage_time(envelope, STAGE, started), "response.passed", started)
            summary = {"object": "list", "count": len(data),
                       "dimensions": len(data[0].get("embedding") or []) if data else 0}
            await self.runtime.finish(out, status=200, body=envelope.response, stored_response=summary)
            return
        mapping = self._mapping(envelope)
        result = filter_response(envelope.response, mapping=mapping, scanner=self.scanner,
                                 config=self.config.output_filter, restore=self.restore)
        out = with_stage_time(envelope, STAGE, started, output_findings=result.findings)
        if result.blocked is not None:
            await self.runtime.fail(out, result.blocked, started, "response.blocked")
            return
        out = self.runtime.event(out, "response.filtered", started, attrs={"findings": result.findings})
        await self.runtime.finish(out, status=200, body=result.response,
                                  stored_response=stored_answer(result.response, mapping))

    # -- streams ---------------------------------------------------------------------------------

    def open(self, envelope: Envelope) -> None:
        mapping = self._mapping(envelope)
        self.sessions[envelope.request_id] = StreamSession(
            envelope=envelope,
            mapping=mapping,
            filter=StreamFilter(mapping, self.scanner, self.config.output_filter, self.restore),
            started=time.perf_counter(),
        )
        self.runtime.ticker.add(envelope.ack_subject)

    async def _emit(self, session: StreamSession, chunk: dict[str, Any]) -> None:
        envelope = session.envelope
        reply = Reply(kind="chunk", request_id=envelope.request_id, delivery=envelope.delivery,
                      seq=session.out_seq, body=chunk, ttfb_ms=envelope.ttfb_ms)
        session.out_seq += 1
        await self.runtime.reply(envelope, reply)

    async def piece(self, piece: StreamPiece) -> None:
        session = self.sessions.get(piece.request_id)
        if session is None or piece.seq != session.next_piece:
            return  # a stream this replica no longer holds (ended or blocked), or a gap
        session.next_piece += 1
        try:
            if piece.chunk is not None:
                await self._chunk(session, piece.chunk)
            if piece.final is not None:
                await self._end(session, piece.final, piece.error)
        except GatewayError as exc:  # a block action in the stream: end it in-band
            self.sessions.pop(piece.request_id, None)
            envelope = (piece.final or session.envelope).model_copy(
                update={"output_findings": session.filter.findings})
            await self.runtime.fail(envelope, exc, session.started, "response.blocked")

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
                delta["content"] = session.filter.push(index, content)
            if choice.get("finish_reason"):
                session.open_choices.discard(index)
                tail = session.filter.finish(index)
                if tail:
                    delta["content"] = (delta.get("content") or "") + tail
            if delta.get("content"):
                session.text.append(delta["content"])
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
        self.sessions.pop(final.request_id, None)
        for index in sorted(session.open_choices):
            tail = session.filter.finish(index)
            if tail:
                session.text.append(tail)
                await self._emit(session, self._content_chunk(final, index, tail))
        findings = session.filter.findings
        out = with_stage_time(final, STAGE, session.started, output_findings=findings)
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
        stored = {"stream": True, "content": conceal("".join(session.text), session.mapping)}
        if error is not None:
            out = self.runtime.event(out, "response.stream_failed", session.started, status="error",
                                     attrs={"error_code": error.code})
            await self.runtime.finish(out, status=error.status_code, error=error, stored_response=stored)
            return
        await self.runtime.reply(out, Reply(kind="end", request_id=out.request_id, delivery=out.delivery,
                                            seq=session.out_seq, provider_ms=out.provider_ms))
        out = self.runtime.event(out, "response.filtered", session.started,
                                 attrs={"findings": findings, "chunks": session.out_seq})
        await self.runtime.finish(out, status=200, answered=True, stored_response=stored)

    @staticmethod
    def _content_chunk(envelope: Envelope, index: int, text: str) -> dict[str, Any]:
        return {"id": f"chatcmpl-{envelope.request_id}", "object": "chat.completion.chunk",
                "created": int(envelope.received_at), "model": envelope.model_served or "",
                "choices": [{"index": index, "delta": {"content": text}, "finish_reason": None}]}


def scanner_inputs(config: GatewayConfig) -> object:
    """What the output scanner is built from: a change to any of these rebuilds it."""
    return (config.output_filter.entity_types, config.redaction.score_threshold, config.redaction.custom)


def build_scanner(config: GatewayConfig) -> PiiScanner:
    return bootstrap.pii_scanner(config.output_filter.entity_types, config.redaction.score_threshold, config)


async def setup(broker: NatsBroker, settings: Settings) -> Hooks:
    live = await bootstrap.live_config(settings, STAGE)
    runtime = StageRuntime(broker, STAGE, settings.ack_wait_s)
    # (config, scanner), the scanner rebuilt in a thread when its settings change (hot reload)
    scanners = Derived(live.current, scanner_inputs, build_scanner)
    stage = OutputFilterStage(runtime, *scanners.current, settings.sealing_key())

    async def reload(config: GatewayConfig, version: str) -> None:
        await scanners.update(config, version)
        stage.use(*scanners.current)

    live.on_change(reload)
    instance_subject = f"{subjects.RESP_FILTER_INSTANCE}.{uuid7().replace('-', '')}"

    @broker.subscriber(subjects.RESP_FILTER, queue=subjects.QUEUE_GROUPS[subjects.RESP_FILTER],
                       no_reply=True, ack_policy=AckPolicy.MANUAL)
    async def on_response(data: bytes) -> None:
        message: Any = broker.context.get_local("message")
        reply_subject = message.raw_message.reply
        if reply_subject:  # a stream opening: take it, and tell the provider stage where to send it
            async def take(envelope: Envelope, started: float) -> None:
                stage.open(envelope)
                await runtime.nc.publish(reply_subject, instance_subject.encode())
            await runtime.run(data, take)
        else:
            await runtime.run(data, stage.complete)

    @broker.subscriber(instance_subject, no_reply=True, ack_policy=AckPolicy.MANUAL)
    async def on_piece(data: bytes) -> None:
        await stage.piece(StreamPiece.model_validate_json(data))

    return Hooks(cleanup=live.stop)


if __name__ == "__main__":
    main("output_filter", setup)
