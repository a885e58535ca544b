"""A provider's stream on its way to the output filter: ordered pieces, kept whole across failures.

The pieces go to the one filter replica that took the stream (its own subject), so a value split across
chunks meets one hold-back window. Every piece sent is kept until the filter holds the end of the
request. Every ``PING_EVERY_S`` the relay asks the replica how far it got (``StreamAck``): pieces a
broker restart dropped are sent again; a replica that is gone (no responders) or does not know the
stream is replaced by another, which is given every piece from the first (it produces the same chunks;
ingress drops those it already relayed). The last piece is confirmed: from then on the filter replica
answers, records and acks the request, and the provider stage lets go of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx

from infra.confirm import NoResponders
from infra.tasks import cancel
from schemas import control, subjects
from schemas.control import StreamAck
from schemas.envelope import Envelope, StreamPiece
from schemas.errors import DeadlineExceeded, GatewayError, ServiceUnavailable, StreamInterrupted
from schemas.wire import decode, encode
from workers.provider_calls import OpenStream
from workers.runtime import StageRuntime

log = logging.getLogger("gateway.provider")

HAND_OVER_ATTEMPT_S = 2.0
"""How long a filter replica has to confirm it took an answer before it is offered again (it confirms
on receipt: only a replica that died, or a message lost in a broker restart, misses this)."""
HAND_OVER_GIVE_UP_S = 30.0
PING_EVERY_S = 0.5


class Superseded(GatewayError):
    """The filter replica already ended the request (a guardrail blocked the stream): stop pumping."""


class StreamRelay:
    """One provider stream to the output filter, as ordered ``StreamPiece`` messages (module doc)."""

    def __init__(self, runtime: StageRuntime, opening: Envelope) -> None:
        self.runtime = runtime
        self.opening = opening
        self.request_id = opening.request_id
        self.subject = ""
        self.pieces: list[bytes] = []
        self.seq = 0
        self.elapsed_ms = 0.0
        self.replicas = 0
        self.taken = False
        self._pinger: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """A filter replica takes the stream: asked again while none answers, up to the deadline."""
        answer = await self.runtime.confirmer.deliver(
            self.runtime.ctx.hop(subjects.RESP_FILTER_OPEN), encode(self.opening), attempt_s=1.0,
            give_up_s=max(1.0, min(self.opening.remaining_s(), HAND_OVER_GIVE_UP_S)))
        if answer is None:
            raise ServiceUnavailable("No output-filter replica is available to take the stream.", retry_after_s=1.0)
        self.subject = answer.data.decode()
        self.replicas += 1
        if self._pinger is None:
            self._pinger = asyncio.create_task(self._ping_loop())

    async def close(self) -> None:
        pinger, self._pinger = self._pinger, None
        await cancel(pinger)

    async def send(self, chunk: dict[str, Any]) -> None:
        piece = StreamPiece(request_id=self.request_id, seq=self.seq, chunk=chunk)
        self.seq += 1
        data = encode(piece)
        self.pieces.append(data)
        await self.runtime.nc.publish(self.subject, data)

    async def _replace(self) -> None:
        """The replica is gone or lost the stream: another one takes it from the first piece."""
        log.info("stream %s: output-filter replica %s lost; replaying %d pieces to another",
                 self.request_id, self.subject, len(self.pieces))
        await self.open()
        for data in self.pieces:
            await self.runtime.nc.publish(self.subject, data)

    async def _catch_up(self, ack: StreamAck) -> None:
        if ack.next is None:
            await self._replace()
        else:
            for data in self.pieces[ack.next:]:
                await self.runtime.nc.publish(self.subject, data)

    async def _ping_loop(self) -> None:
        while not self.taken:
            await asyncio.sleep(PING_EVERY_S)
            try:
                answer = await self.runtime.confirmer.request(
                    self.subject, self.request_id.encode(), {control.KIND: control.PING}, timeout_s=PING_EVERY_S * 2)
                ack = decode(answer.data, StreamAck)
                if ack.taken:
                    self.taken = True
                    return
                await self._catch_up(ack)
            except NoResponders:
                await self._replace()
            except TimeoutError:
                continue  # a busy replica, or a broker restart: the next ping tells
            except GatewayError:
                return  # no replica at all until the deadline: the last piece's delivery reports it

    async def pump(self, opened: OpenStream, envelope: Envelope) -> tuple[GatewayError | None, str]:
        """Relay until the provider finishes; returns the error that ended it early, if any, and the text."""
        started = time.perf_counter()
        text: list[str] = []

        async def relay(chunks: list[dict[str, Any]]) -> None:
            if self.taken:
                raise Superseded("the output filter ended the request")
            for chunk in chunks:
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        text.append(content)
                await self.send(chunk)

        error: GatewayError | None = None
        try:
            await relay(opened.first_chunks)
            async with asyncio.timeout(max(0.0, envelope.remaining_s())):
                async for data in opened.raw:
                    for event in opened.parser.feed(data):
                        await relay(opened.decoder.feed(event))
                for event in opened.parser.flush():
                    await relay(opened.decoder.feed(event))
            if not opened.decoder.state.finished:
                error = StreamInterrupted("The provider closed the stream before it finished.")
        except TimeoutError:
            error = DeadlineExceeded("The request deadline passed while the provider was streaming.")
        except GatewayError as exc:
            error = exc
        except httpx.HTTPError as exc:
            error = StreamInterrupted(f"The provider stream broke: {type(exc).__name__}.")
        finally:
            with contextlib.suppress(Exception):
                await opened.response.aclose()
        self.elapsed_ms = (time.perf_counter() - started) * 1000
        return error, "".join(text)

    async def finish(self, final: Envelope, error: GatewayError | None) -> None:
        """The last piece, until the filter replica holding the stream confirms it took the end."""
        piece = StreamPiece(request_id=self.request_id, seq=self.seq, final=final,
                            error=error.info() if error else None)
        self.seq += 1
        data = encode(piece)
        give_up = time.monotonic() + max(1.0, min(final.remaining_s() + 5.0, HAND_OVER_GIVE_UP_S))
        while not self.taken:
            try:
                answer = await self.runtime.confirmer.request(self.subject, data, timeout_s=HAND_OVER_ATTEMPT_S)
                ack = decode(answer.data, StreamAck)
                if ack.taken:
                    self.taken = True
                    return
                await self._catch_up(ack)  # pieces went missing, or the replica lost the stream
            except NoResponders:
                await self._replace()
            except TimeoutError:
                pass
            if time.monotonic() > give_up:
                raise ServiceUnavailable("No output-filter replica took the end of the stream.")
