"""What every stage worker shares: the hot path around the pure stage logic.

FastStream declares the subscribers (``apply_types=False``, ``logger=None``, raw-bytes decoder,
manual ack); the hot path publishes on the underlying nats-py connection. Every handler goes
through ``StageRuntime.run``: decode the envelope, refuse it if its deadline passed, time the stage,
turn any exception into a typed error answered to the caller, emit the stage event.

Ending a request (``finish``) is one function for every stage: answer ``reply_to``, emit the
``RequestCompleted`` record, then ack the request's JetStream message (end-to-end ack).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient

from schemas import subjects
from schemas.envelope import Envelope, Reply
from schemas.errors import DeadlineExceeded, ErrorInfo, GatewayError, InternalError
from schemas.events import RequestCompleted, StageEvent
from schemas.ids import uuid7

log = logging.getLogger("gateway")

ACK = b"+ACK"
IN_PROGRESS = b"+WPI"


async def raw_body(message: Any) -> Any:
    """FastStream decoder: hand the handler the raw payload bytes (no per-message JSON work)."""
    return message.body


def make_broker(nats_url: str, name: str) -> NatsBroker:
    return NatsBroker(
        nats_url,
        apply_types=False,
        logger=None,
        decoder=raw_body,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
    )


class InProgressTicker:
    """Keeps long-running requests from being redelivered: sends ``+WPI`` to their ack subjects.

    One loop for the whole process, every ``ack_wait / 3``, instead of a timer per request."""

    def __init__(self, nc: Callable[[], NatsClient], ack_wait_s: float) -> None:
        self._nc = nc
        self._period = ack_wait_s / 3
        self._subjects: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, ack_subject: str | None) -> None:
        if ack_subject:
            self._subjects[ack_subject] = self._subjects.get(ack_subject, 0) + 1
            if self._task is None:
                self._task = asyncio.create_task(self._loop())

    def discard(self, ack_subject: str | None) -> None:
        if ack_subject and ack_subject in self._subjects:
            left = self._subjects[ack_subject] - 1
            if left <= 0:
                del self._subjects[ack_subject]
            else:
                self._subjects[ack_subject] = left

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._period)
            try:
                nc = self._nc()
                for subject in list(self._subjects):
                    await nc.publish(subject, IN_PROGRESS)
            except Exception:  # noqa: BLE001 - a reconnecting client must not stop the heartbeats for good
                log.warning("could not send in-progress signals; retrying next period", exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None


class StageRuntime:
    def __init__(self, broker: NatsBroker, stage: str, ack_wait_s: float = 3.0) -> None:
        self.broker = broker
        self.stage = stage
        self.event_subject = subjects.event_subject(stage)
        self.ticker = InProgressTicker(lambda: self.nc, ack_wait_s)

    @property
    def nc(self) -> NatsClient:
        connection = self.broker.connection
        assert connection is not None, "broker not started"
        return connection

    # -- publishing -------------------------------------------------------------------------------

    async def forward(self, subject: str, envelope: Envelope) -> None:
        await self.nc.publish(subject, envelope.model_dump_json().encode())
        # nats-py writes from a flusher task, i.e. only once this handler yields: yield now so the
        # next stage gets the envelope before we spend time on events and FastStream's bookkeeping.
        await asyncio.sleep(0)

    async def record(self, completed: RequestCompleted) -> None:
        await self.nc.publish(self.event_subject, completed.model_dump_json().encode())

    def event(
        self,
        envelope: Envelope,
        type_: str,
        started: float,
        *,
        status: str = "ok",
        attrs: dict[str, Any] | None = None,
    ) -> Envelope:
        """The envelope with this stage's event added; it is recorded when the request ends."""
        event = StageEvent(
            event_id=uuid7(),
            request_id=envelope.request_id,
            ts=time.time(),
            stage=self.stage,
            type=type_,
            status="ok" if status == "ok" else "error",
            tenant=envelope.tenant,
            api_key_id=envelope.api_key_id,
            duration_ms=(time.perf_counter() - started) * 1000,
            delivery=envelope.delivery,
            attrs=attrs or {},
        )
        return envelope.model_copy(update={"events": [*envelope.events, event]})

    async def reply(self, envelope: Envelope, reply: Reply) -> None:
        await self.nc.publish(envelope.reply_to, reply.model_dump_json().encode())
        await asyncio.sleep(0)  # on the wire before the bookkeeping that follows (see ``forward``)

    async def ack(self, envelope: Envelope) -> None:
        self.ticker.discard(envelope.ack_subject)
        if envelope.ack_subject:
            await self.nc.publish(envelope.ack_subject, ACK)

    # -- ending a request ---------------------------------------------------------------------------

    async def finish(
        self,
        envelope: Envelope,
        *,
        status: int,
        body: dict[str, Any] | None = None,
        error: ErrorInfo | None = None,
        stored_response: dict[str, Any] | None = None,
        answered: bool = False,
    ) -> None:
        """End the request: answer the caller (unless ``answered``), record it, ack it."""
        if not answered:
            if error is not None:
                reply = Reply(kind="error", request_id=envelope.request_id, delivery=envelope.delivery,
                              status=error.status_code,
                              error=error, provider_ms=envelope.provider_ms, ttfb_ms=envelope.ttfb_ms)
            else:
                reply = Reply(kind="response", request_id=envelope.request_id, delivery=envelope.delivery,
                              status=status, body=body,
                              provider_ms=envelope.provider_ms, ttfb_ms=envelope.ttfb_ms)
            await self.reply(envelope, reply)
        await self.record(completed_record(envelope, self.stage, status, error, stored_response))
        await self.ack(envelope)

    async def fail(self, envelope: Envelope, error: GatewayError, started: float, type_: str) -> None:
        info = error.info()
        envelope = self.event(envelope, type_, started, status="error",
                              attrs={"error_type": info.type, "error_code": info.code, "status": info.status_code})
        await self.finish(envelope, status=info.status_code, error=info)

    # -- the handler wrapper ----------------------------------------------------------------------

    async def run(
        self,
        data: bytes,
        work: Callable[[Envelope, float], Awaitable[None]],
        *,
        delivery: int | None = None,
        ack_subject: str | None = None,
    ) -> None:
        started = time.perf_counter()
        try:
            envelope = Envelope.model_validate_json(data)
        except Exception:  # a message we cannot read has no caller we could answer
            log.exception("%s: undecodable envelope dropped", self.stage)
            if ack_subject:
                await self.nc.publish(ack_subject, ACK)
            return
        if delivery is not None or ack_subject is not None:
            envelope = envelope.model_copy(update={"delivery": delivery or 1, "ack_subject": ack_subject})
        try:
            if envelope.expired():
                raise DeadlineExceeded(
                    f"the request deadline passed before the {self.stage} stage could handle it"
                )
            await work(envelope, started)
        except GatewayError as exc:
            await self.fail(envelope, exc, started, f"{self.stage}.failed")
        except Exception as exc:  # noqa: BLE001 - every accepted request must end in an answer
            log.exception("%s: unexpected error on %s", self.stage, envelope.request_id)
            await self.fail(envelope, InternalError(f"{self.stage} stage failed: {type(exc).__name__}"),
                            started, f"{self.stage}.crashed")


def elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def with_stage_time(envelope: Envelope, stage: str, started: float, **update: Any) -> Envelope:
    stage_ms = dict(envelope.stage_ms)
    stage_ms[stage] = round(stage_ms.get(stage, 0.0) + elapsed_ms(started), 3)
    return envelope.model_copy(update={"stage_ms": stage_ms, **update})


def completed_record(
    envelope: Envelope,
    stage: str,
    status: int,
    error: ErrorInfo | None,
    stored_response: dict[str, Any] | None,
) -> RequestCompleted:
    now = time.time()
    latency_ms = (now - envelope.received_at) * 1000
    usage = envelope.usage
    return RequestCompleted(
        event_id=uuid7(),
        request_id=envelope.request_id,
        ts=envelope.received_at,
        finished_at=now,
        stage=stage,
        tenant=envelope.tenant or "",
        api_key_id=envelope.api_key_id or "",
        user=envelope.user or str(envelope.body.get("user") or ""),
        tags=envelope.tags,
        config_version=envelope.config_version,
        route_path=envelope.route_path,
        experiment=envelope.experiment,
        variant=envelope.variant,
        endpoint=envelope.endpoint,
        model_requested=envelope.model_requested,
        model_served=envelope.model_served or "",
        provider=envelope.provider or "",
        stream=envelope.stream,
        status_code=status,
        error_type=error.type if error else "",
        error_code=(error.code or "") if error else "",
        error_message=error.message if error else "",
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        cached_tokens=usage.cached_prompt_tokens if usage else 0,
        usage_source=usage.source if usage else "",
        cost_usd=envelope.cost_usd,
        latency_ms=round(latency_ms, 3),
        ttfb_ms=envelope.ttfb_ms,
        provider_ms=round(envelope.provider_ms, 3),
        gateway_overhead_ms=round(max(0.0, latency_ms - envelope.provider_ms), 3),
        attempts=envelope.attempts,
        redactions=sum(envelope.redactions.values()),
        redaction_counts=envelope.redactions,
        output_findings=envelope.output_findings,
        # every verdict the guardrails left on the way (types and counts, never values): guardrail_verdicts
        guardrail_profile=envelope.guardrail_profile,
        verdicts=envelope.verdicts,
        delivery=envelope.delivery,
        stage_ms=envelope.stage_ms,
        # Bodies land only after the redaction stage has run over them: PII never lands in clear.
        request_body=orjson.dumps(envelope.body).decode() if envelope.redacted else "",
        response_body=orjson.dumps(stored_response).decode() if stored_response is not None else "",
        stage_events=envelope.events,
    )
