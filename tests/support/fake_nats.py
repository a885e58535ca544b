"""A stand-in for the nats-py connection in unit tests of the stage workers (no server).

It records every publish in order (``published``: subject, payload; ``sent``: with reply and headers),
delivers to callbacks subscribed on exact subjects or ``prefix.*``, and answers confirmed messages
(those with a reply subject) the way the real receivers would unless told otherwise: JetStream stores a
record (a ``PubAck``), ingress confirms an answer (``ReplyAck`` ok), a filter replica takes an answer.
``answers`` overrides the answer per subject prefix (``None``: no answer at all, as when the receiver
died; ``NO_RESPONDERS``: nobody subscribes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from nats.errors import NoRespondersError

from infra.live_config import LiveConfig
from infra.settings import Settings
from schemas import subjects
from workers.context import WorkerContext

NO_RESPONDERS = object()


@dataclass
class FakeMsg:
    subject: str
    data: bytes = b""
    reply: str = ""
    headers: dict[str, str] | None = None


@dataclass
class Sent:
    subject: str
    data: bytes
    reply: str = ""
    headers: dict[str, str] | None = None


@dataclass
class FakeNats:
    sent: list[Sent] = field(default_factory=list)
    answers: dict[str, Any] = field(default_factory=dict)
    subs: dict[str, Callable[[Any], Awaitable[None]]] = field(default_factory=dict)
    is_connected: bool = True
    fail_publishes: int = 0
    inboxes: int = 0

    @property
    def published(self) -> list[tuple[str, bytes]]:
        return [(s.subject, s.data) for s in self.sent]

    def on(self, subject: str) -> list[bytes]:
        return [s.data for s in self.sent if s.subject == subject]

    def new_inbox(self) -> str:  # as nats-py's, under the connection's inbox prefix
        self.inboxes += 1
        return f"_INBOX_fake.{self.inboxes}"

    async def publish(self, subject: str, payload: bytes = b"", reply: str = "",
                      headers: dict[str, str] | None = None) -> None:
        if self.fail_publishes:
            self.fail_publishes -= 1
            raise ConnectionError("nats: connection closed")
        self.sent.append(Sent(subject, payload, reply, headers))
        callback = self._callback(subject)
        if callback is not None:
            asyncio.get_running_loop().create_task(callback(FakeMsg(subject, payload, reply, headers)))
        elif reply:
            self._answer(subject, reply)

    def _callback(self, subject: str) -> Callable[[Any], Awaitable[None]] | None:
        if subject in self.subs:
            return self.subs[subject]
        prefix = subject.rsplit(".", 1)[0]
        return self.subs.get(f"{prefix}.*")

    def _answer(self, subject: str, reply: str) -> None:
        answer: Any = b""
        if subject.startswith(subjects.EVT_PREFIX):
            answer = b'{"stream":"GW_EVENTS","seq":1}'
        for prefix, value in self.answers.items():
            if subject.startswith(prefix):
                answer = value
        if answer is None:
            return
        if answer is NO_RESPONDERS:
            msg = FakeMsg(reply, b"", "", {"Status": "503"})
        else:
            msg = FakeMsg(reply, answer)
        callback = self._callback(reply)
        if callback is not None:
            asyncio.get_running_loop().create_task(callback(msg))

    async def request(self, subject: str, payload: bytes = b"", timeout: float = 1.0,
                      headers: dict[str, str] | None = None) -> FakeMsg:
        """nats-py's request: the ``answers`` entry for the subject, else nobody subscribes."""
        self.sent.append(Sent(subject, payload, "", headers))
        for prefix, value in self.answers.items():
            if subject.startswith(prefix) and value is not None and value is not NO_RESPONDERS:
                return FakeMsg(subject, value)
        raise NoRespondersError

    async def subscribe(self, subject: str, queue: str = "", cb: Callable[[Any], Awaitable[None]] | None = None) -> Any:
        assert cb is not None
        self.subs[subject] = cb
        nc = self

        class _Sub:
            async def unsubscribe(self) -> None:
                nc.subs.pop(subject, None)

        return _Sub()

    async def flush(self) -> None:
        return None


def context(nc: FakeNats, live: LiveConfig | None = None, **settings: Any) -> WorkerContext:
    """A ``WorkerContext`` over ``nc`` (its confirmation inbox subscribes on first use)."""
    broker: Any = type("Broker", (), {"connection": nc})()
    return WorkerContext(broker, Settings(**settings), live)


async def settled(ctx: WorkerContext, *runtimes: Any) -> None:
    """Let every background task of these runtimes finish (records stored, answers confirmed, acks sent)."""
    for _ in range(50):
        await asyncio.sleep(0)
        if all(not r.busy for r in runtimes):
            return
    await asyncio.gather(*(r.drain(1.0) for r in runtimes))
