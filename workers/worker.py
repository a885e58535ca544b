"""The one shape of a worker: a class built from the process's ``WorkerContext``.

``workers/app.py`` sets each worker of a process up (``await Cls.setup(ctx)``: the constructor, then
``prepare``), starts the broker, then calls the same hooks on every worker:

- ``__init__(ctx)``: build what it keeps (things derived from the config through ``infra.derived``,
  the stage runtime, clients) and declare its subscribers (``WorkerContext.subscribe``);
- ``prepare()``: before the broker starts, what must be ready before the first message (models run
  once, the store opened);
- ``after_start()``: the broker is connected and the subscriptions are live;
- ``reconnected()``: the broker connection came back (the broker may have restarted);
- ``drain()``: shutdown, take nothing new;
- ``cleanup()``: shutdown, finish what is in hand and let go of what it holds.

A stage of the request chain is a ``StageWorker``: its ``StageRuntime`` (``runtime``), ``work(envelope,
started)`` on each request, and ``on_message`` taking each message of its subject (``subject`` in the
process's lane, ``WorkerContext.hop``, in the subject's queue group) into the runtime (``accept``: the
work runs in the request's own task).
"""

from __future__ import annotations

from typing import ClassVar, Self

from nats.aio.msg import Msg

from schemas import subjects
from schemas.envelope import Envelope
from workers.context import WorkerContext
from workers.runtime import StageRuntime


class Worker:
    name: ClassVar[str]

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx

    @classmethod
    async def setup(cls, ctx: WorkerContext) -> Self:
        """The worker, built and prepared: ready for the broker to start."""
        worker = cls(ctx)
        await worker.prepare()
        return worker

    async def prepare(self) -> None:
        """Before the broker starts: what must be ready before the first message."""

    async def after_start(self) -> None:
        """The broker is connected and every subscription is live."""

    async def reconnected(self) -> None:
        """The broker connection came back (the broker may have restarted)."""

    async def drain(self) -> None:
        """Shutdown: take nothing new."""

    async def cleanup(self) -> None:
        """Shutdown: finish what is in hand, let go of what the worker holds."""


class StageWorker(Worker):
    subject: ClassVar[str] = ""
    """The subject the stage takes its messages from (in its process's lane), in that subject's queue group
    ("": none)."""

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        self.runtime = StageRuntime(ctx, self.name)
        if self.subject:
            ctx.subscribe(ctx.hop(self.subject), self.on_message, queue=subjects.QUEUE_GROUPS[self.subject])

    async def on_message(self, msg: Msg) -> None:
        """A message on ``subject``: take the request (a few µs); ``work`` runs in its own task."""
        self.runtime.accept(msg.data, self.work)

    async def work(self, envelope: Envelope, started: float) -> None:
        """The stage's work on one request: forward it, or end it (``runtime.finish``/``fail``)."""
        raise NotImplementedError

    async def cleanup(self) -> None:
        await self.runtime.drain()
