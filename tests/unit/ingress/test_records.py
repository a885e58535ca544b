"""Ingress's own records: queued, published to JetStream with the request id, kept through an outage."""

from __future__ import annotations

from typing import Any

from ingress.records import RecordOutbox
from schemas.events import RequestCompleted


def record(rid: str) -> RequestCompleted:
    return RequestCompleted(event_id=f"e-{rid}", request_id=rid, ts=1.0, finished_at=2.0, stage="ingress",
                            status_code=503)


class FlakyJetStream:
    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.stored: list[tuple[str, str]] = []

    async def publish(self, subject: str, data: bytes, timeout: float, headers: dict[str, str]) -> Any:
        if self.fail:
            self.fail -= 1
            raise TimeoutError("no answer: the broker is restarting")
        self.stored.append((subject, headers["Nats-Msg-Id"]))


class Nats:
    def __init__(self, js: FlakyJetStream) -> None:
        self.js = js
        self.is_connected = True

    def jetstream(self) -> FlakyJetStream:
        return self.js


async def test_records_are_kept_until_jetstream_stores_them() -> None:
    js = FlakyJetStream(fail=1)
    outbox = RecordOutbox(lambda: Nats(js))  # type: ignore[arg-type, return-value]
    outbox.add(record("r1"))
    outbox.add(record("r2"))
    assert not await outbox._send_batch()  # one failed: it stays queued, in order
    assert len(outbox) == 1
    assert await outbox._send_batch()
    assert sorted(js.stored) == [("gw.evt.ingress", "r1"), ("gw.evt.ingress", "r2")] and len(outbox) == 0


async def test_nothing_is_sent_while_disconnected() -> None:
    js = FlakyJetStream(fail=0)
    nc = Nats(js)
    nc.is_connected = False
    outbox = RecordOutbox(lambda: nc)  # type: ignore[arg-type, return-value]
    outbox.add(record("r1"))
    assert not await outbox._send_batch() and len(outbox) == 1 and js.stored == []
