"""Settlement: a request that holds reservations settles every scope that holds them with its actual
cost (none when it failed: the hold is released) and its actual tokens.

Where the request ends (``StageRuntime.finish``), before its record and answer leave: the process's
``Settler`` (``WorkerContext.settle``) settles it on the process's ledger handle, coalesced with the
reservations and settlements in flight there, and the record goes to the plain event subject: no
second delivery of the record, no ack, and the settlement shares its ledger write with the reservations
of that moment. A process that dies before settling leaves the request unacked and unanswered with its
holds in place: the rerun is admitted on those holds (counted once) and settles at its own end with its
own cost (a provider call made by a run that died is not counted, as before: its maximum cost was held
meanwhile). One that dies after settling but before the answer left has its rerun reserve and settle
again: both runs' calls are counted.

When settling there fails (the ledger unreachable within ``SETTLE_TIMEOUT_S``), the record goes to
``gw.evt.governed.<stage>`` instead, where one durable pull consumer (``ledger``) shared by every policy
replica settles it: acked only once every scope is settled; a process killed mid-way leaves it unacked
and JetStream hands it to another replica after ``ack_wait``; scopes settled already are skipped
(settlement acts only while the request's hold is there). Only a small view of the record is decoded.

A scope's soft threshold crossed for the first time in a period records a ``ControlEvent``
(``kind = "budget"``, one ``gateway_events`` row).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Protocol

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infra.jetstream import bursts
from infra.ledger import Ledger
from infra.tasks import cancel
from schemas import subjects
from schemas.events import ControlAttrs, ControlEvent
from schemas.governance import nusd_to_usd, usd_to_nusd
from schemas.ids import uuid7
from schemas.wire import encode
from stages.governance.draft import Draft
from stages.governance.scopes import Directory, scope_of
from stages.governance.settlement import Settled, settle_on
from workers.admission import each

log = logging.getLogger("gateway.settlement")

BATCH = 128
FETCH_WAIT_S = 0.1
"""How long one fetch waits for its batch to fill. A pull request with an expiry is held by the server
until the batch is full or the expiry passes, so this bounds settlement's lag (holds in flight grow
with it: every ledger write carries them) at the cost of ten idle fetches a second per replica."""

STOP_WAIT_S = 2.0
"""How long a stopping settler may go on taking what the broker sent before it is cancelled."""


class SettlementFacts(Protocol):
    """What settlement needs of a request's record (``RequestCompleted`` and ``SettlementView`` have it)."""

    @property
    def request_id(self) -> str: ...
    @property
    def cost_usd(self) -> str | None: ...
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def scopes(self) -> list[str]: ...


class SettlementView(msgspec.Struct):
    """What settlement reads of a ``RequestCompleted`` (unknown fields ignored: a fast decode)."""

    request_id: str
    status_code: int = 0
    cost_usd: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    scopes: list[str] = []
    hold_nusd: int = 0


_DECODER = msgspec.json.Decoder(SettlementView)


def actual_nusd(view: SettlementFacts) -> int:
    """What the request cost (``cost_usd``; none when unpriced or nothing was charged)."""
    try:
        return usd_to_nusd(view.cost_usd) if view.cost_usd is not None else 0
    except ValueError:
        return 0


class Settler:
    """``directory``: the scopes' limits as configured now (for the soft threshold)."""

    def __init__(self, nc: Callable[[], NatsClient], ledger: Callable[[], Ledger[Draft]],
                 directory: Callable[[], Directory], name: str = "policy") -> None:
        self._nc = nc
        self._ledger = ledger
        self._directory = directory
        self._source = f"{name}-{os.getpid()}"
        self._task: asyncio.Task[None] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stopping = False
        self.settled = 0

    def start(self) -> None:
        """Run the durable ``ledger`` consumer (once per process, however many policy workers it hosts)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        """Take what the broker already sent before letting go: the loop ends with the shared last pass
        (``infra/jetstream.py`` ``bursts(last=True)``); cancelled if that takes longer than ``STOP_WAIT_S``.
        A record delivered to a subscription that has gone would wait out the consumer's ack wait (10 s)
        before another replica settles it, its hold reserved all that time."""
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            await asyncio.wait({task}, timeout=STOP_WAIT_S)
            await cancel(task)
        # before the connection drains: nats-py's fetch takes messages without marking them done, so a
        # drain would wait on a pull subscription until its timeout
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                if self._sub is None:
                    self._sub = await self._nc().jetstream().pull_subscribe_bind(
                        durable=subjects.CONSUMER_LEDGER, stream=subjects.STREAM_EVENTS)
                try:
                    msgs = await self._sub.fetch(BATCH, timeout=FETCH_WAIT_S)
                except TimeoutError:
                    continue
                await asyncio.gather(*(self._one(m) for m in msgs))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker restarts, the consumer is redeclared: go on
                if self._stopping:
                    return
                log.warning("settlement: %s; retrying", exc)
                await self._unsubscribe()
                await asyncio.sleep(1.0)
        if self._sub is not None:  # stopping: what the broker already sent, settled here
            async for msgs in bursts(self._sub, BATCH, "settlement", last=True):
                await asyncio.gather(*(self._one(m) for m in msgs))

    async def _one(self, msg: Msg) -> None:
        try:
            if b'"scopes":' in msg.data:
                await self.settle(_DECODER.decode(msg.data))
        except msgspec.DecodeError:
            log.warning("settlement: undecodable record on %s dropped", msg.subject)
        except Exception:  # noqa: BLE001 - unacked: redelivered after ack_wait, settled scopes skipped
            log.exception("settlement: could not settle a record on %s", msg.subject)
            return
        await msg.ack()

    async def settle(self, view: SettlementFacts) -> None:
        if not view.scopes:
            return
        cost = actual_nusd(view)
        tokens = view.prompt_tokens + view.completion_tokens
        ledger, directory = self._ledger(), self._directory()
        outcomes = await each([
            ledger.apply(key, partial(settle_on, request_id=view.request_id, actual_nusd=cost,
                                      actual_tokens=tokens, scope=scope_of(directory, key)))
            for key in view.scopes])
        results: list[Settled] = []
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # unacked: redelivered, the scopes settled already are skipped
            results.append(outcome)
        self.settled += 1
        for key, done in zip(view.scopes, results, strict=True):
            if done.overshoot_nusd and done.settled:
                log.info("settlement: %s on %s cost %s past its reservation of %s", view.request_id, key,
                         nusd_to_usd(cost), nusd_to_usd(done.reserved_nusd))
            if done.alert:
                await self._alert(key, done, directory)

    async def _alert(self, key: str, done: Settled, directory: Directory) -> None:
        scope = scope_of(directory, key)
        budget = scope.budget_nusd if scope is not None else None
        event = ControlEvent(
            event_id=uuid7(), ts=time.time(), kind="budget", subject=key, to_state="alert",
            reason=f"spend {nusd_to_usd(done.spent_nusd)} USD reached {scope.alert_at if scope else '?'} of the "
                   f"budget {nusd_to_usd(budget or 0)} USD",
            source=self._source,
            attrs=ControlAttrs(spent_usd=nusd_to_usd(done.spent_nusd), budget_usd=nusd_to_usd(budget or 0),
                               alert_at=scope.alert_at if scope else None, period=scope.period if scope else None))
        try:
            await self._nc().jetstream().publish(subjects.EVT_CONTROL, encode(event),
                                                 headers={"Nats-Msg-Id": event.event_id}, timeout=2.0)
        except Exception as exc:  # noqa: BLE001 - an alert is a record, never a reason to fail settlement
            log.warning("settlement: budget alert for %s not recorded: %s", key, exc)
