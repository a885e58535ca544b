"""Batch worker: drives batch jobs (``/v1/batches``, Anthropic's Message Batches, async requests) through
the chain, and stores the chain's answers to their lines.

Its own process (``python -m workers.batch``, NATS identity ``batch``), restarted by ``gateway up`` like
every child. Every replica:

- answers the chain on ``gw.reply.batch.>`` (queue group ``batch``): stores each line's answer before
  confirming it (``workers/batch_results.py``), so an answer is durable before ``GW_REQ`` lets go of it;
- follows the ``GW_BATCHES`` bucket and drives each unfinished job it holds the lease of
  (``workers/batch_job.py``); a job whose driver died is taken over once its lease runs out;
- keeps its lines in flight within the lane gate (``stages/batch_lane.py``), halving the window when a
  worker process reports that interactive requests wait (``gw.load.report``);
- announces finished async requests to their callback URL, signed (``workers/webhook_sender.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable

import orjson
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from infra.batch_store import JOB_PREFIX, BatchStore
from infra.file_store import FileStore
from infra.tasks import cancel
from ingress.async_api import rendered, result_line, status_document
from schemas import subjects
from schemas.batches import BatchJob, line_request_id
from schemas.errors import GatewayError
from schemas.events import RequestCompleted
from schemas.ids import uuid7
from schemas.wire import encode, replace
from stages.batch_lane import LaneGate, LaneWindow
from workers.app import lower_priority, main
from workers.batch_job import BatchDeps, JobDriver
from workers.batch_results import ResultStore, answer_chain
from workers.context import WorkerContext
from workers.webhook_sender import WebhookSender, webhook_secret
from workers.worker import Worker

log = logging.getLogger("gateway.batch")

LEASE_TTL_S = 10.0
LEASE_RENEW_S = 3.0
RESCAN_S = 5.0
"""How often the worker looks for unfinished jobs nobody drives (a driver that died holds no lease after
``LEASE_TTL_S``; a change to the job would wake the watch, a dead driver changes nothing)."""


class BatchWorker(Worker):
    name = "batch"

    def __init__(self, ctx: WorkerContext) -> None:
        super().__init__(ctx)
        settings = ctx.settings
        self.key = settings.sealing_key()
        # a restarted replica (the same name under `gateway up`) is the same owner: it takes its leases back
        name = settings.process_name
        self.owner = f"{os.uname().nodename}/{name}" if name else f"{os.uname().nodename}-{os.getpid()}-{uuid7()[-12:]}"
        self.window = LaneWindow(settings.batch_concurrency)
        self.gate = LaneGate(self.window, settings.batch_tenant_concurrency)
        self.drivers: dict[str, JobDriver] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._main: list[asyncio.Task[None]] = []
        self._deps: BatchDeps | None = None
        self.stored = 0
        ctx.subscribe(f"{subjects.BATCH_REPLY_PREFIX}.>", self.on_reply, queue=subjects.BATCH_QUEUE)
        ctx.subscribe(subjects.LOAD_REPORT, self.on_load)
        ctx.gauges["batch.jobs"] = lambda: len(self.drivers)
        ctx.gauges["batch.inflight"] = lambda: self.gate.total
        ctx.gauges["batch.window"] = lambda: self.window.lines

    async def prepare(self) -> None:
        """Run at the batch lane's CPU priority, below every interactive process: a busy machine serves
        interactive requests first (the lines' own work runs in the batch lane's stage processes)."""
        lower_priority("batch")

    @property
    def deps(self) -> BatchDeps:
        assert self._deps is not None, "built once the broker is connected"
        return self._deps

    async def after_start(self) -> None:
        js = self.ctx.nc.jetstream()
        self._deps = BatchDeps(
            js=js, jobs=BatchStore(js), files=FileStore(js, self.key), results=ResultStore(js, self.key),
            gate=self.gate, key=self.key, line_timeout_s=self.ctx.settings.batch_line_timeout_s,
            record=self.record, subscribe=self._subscribe)
        self._main = [asyncio.create_task(self._follow(), name="batch-follow"),
                      asyncio.create_task(self._rescan(), name="batch-rescan"),
                      asyncio.create_task(self._grow(), name="batch-window")]

    async def _subscribe(self, subject: str, handler: Callable[[Msg], Awaitable[None]]) -> Subscription:
        return await self.ctx.nc.subscribe(subject, cb=handler)

    # -- the chain's answers ------------------------------------------------------------------------------

    async def on_reply(self, msg: Msg) -> None:
        if self._deps is None:
            return  # not started: unconfirmed, the chain sends it again
        try:
            if await answer_chain(msg, self.deps.results, ended=self._ended) is not None:
                self.stored += 1
        except Exception as exc:  # noqa: BLE001 - unconfirmed: the chain sends it again
            log.warning("batch: an answer on %s not stored yet (%r)", msg.subject, exc)

    async def _ended(self, job_id: str) -> bool:
        found = await self.deps.jobs.get(job_id)
        return found is None or found[0].terminal

    async def on_load(self, msg: Msg) -> None:
        try:
            report = orjson.loads(msg.data)
            lag = float(report.get("lag_ms") or 0.0)
        except Exception:  # noqa: BLE001 - not a load report
            return
        self.window.report(lag, time.monotonic())

    async def _grow(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.window.tick(time.monotonic())

    # -- jobs ---------------------------------------------------------------------------------------------

    async def _follow(self) -> None:
        while True:
            try:
                async for job in self.deps.jobs.watch():
                    self._seen(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the broker restarts: watch again
                log.info("batch: job watch ended (%r); watching again", exc)
                await asyncio.sleep(1.0)

    async def _rescan(self) -> None:
        while True:
            await asyncio.sleep(RESCAN_S)
            try:
                for name in await self.deps.jobs.job_keys():
                    found = await self.deps.jobs.get(name.removeprefix(JOB_PREFIX))
                    if found is not None:
                        self._seen(found[0])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - next time
                log.debug("batch: rescan failed (%r)", exc)

    def _seen(self, job: BatchJob) -> None:
        driver = self.drivers.get(job.id)
        if driver is not None:
            driver.updated(job)
            return
        if job.settled:
            return
        driver = self.drivers[job.id] = JobDriver(job, self.deps)
        task = asyncio.create_task(self._drive(driver), name=f"batch-{job.id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _drive(self, driver: JobDriver) -> None:
        job_id = driver.job.id
        jobs = self.deps.jobs
        renew: asyncio.Task[None] | None = None
        try:
            if not await jobs.take_lease(job_id, self.owner, LEASE_TTL_S):
                return  # another replica drives it
            renew = asyncio.create_task(self._renew(job_id))
            found = await jobs.get(job_id)
            if found is None or found[0].settled:
                return
            driver.job = found[0]
            log.info("batch %s: driving (%s, %d/%d lines sent)", job_id, driver.job.status, driver.job.dispatched,
                     driver.job.total)
            job = await driver.run()
            if job.terminal and job.callback_state == "pending":
                await self._call_back(job)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - left for the rescan: the lease runs out, a driver resumes
            log.exception("batch %s: driver stopped; it resumes shortly", job_id)
        finally:
            await cancel(renew)
            self.drivers.pop(job_id, None)
            with contextlib.suppress(Exception):
                if renew is not None:
                    await jobs.release_lease(job_id)

    async def _renew(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(LEASE_RENEW_S)
            with contextlib.suppress(Exception):
                if not await self.deps.jobs.take_lease(job_id, self.owner, LEASE_TTL_S):
                    log.warning("batch %s: lease lost to another replica", job_id)

    # -- async requests' callbacks -------------------------------------------------------------------------

    async def _call_back(self, job: BatchJob) -> None:
        """POST the async request's result to its callback URL, signed, retried with backoff; the outcome
        is kept on the job (a driver that dies meanwhile leaves it pending: the next one delivers it)."""
        config = self.ctx.live.current.webhooks
        line = await result_line(self.deps.files, job)
        status, body = rendered(job, line) if line is not None else (200, status_document(job))
        payload = orjson.dumps({"id": job.id, "object": "async.result", "status": job.status,
                                "request_id": line_request_id(job.id, 0), "status_code": status, "body": body})
        try:
            secret = webhook_secret(config)
        except GatewayError as exc:
            log.error("batch %s: cannot sign its callback (%s); not sent", job.id, exc)
            outcome_state = "failed"
        else:
            async with WebhookSender(config, secret) as sender:
                outcome = await sender.deliver(job.callback_url, payload, job.id)
            outcome_state = "delivered" if outcome.delivered else "failed"
            log.info("batch %s: callback %s after %d attempt(s) (last status %s%s)", job.id, outcome_state,
                     outcome.attempts, outcome.last_status, f", {outcome.last_error}" if outcome.last_error else "")
        await self.deps.jobs.change(job.id, lambda j: replace(j, callback_state=outcome_state))

    # -- records ------------------------------------------------------------------------------------------

    def record(self, completed: RequestCompleted) -> None:
        """The ``requests`` row of a line answered here (refused before the chain)."""
        task = asyncio.create_task(self._publish_record(completed))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _publish_record(self, completed: RequestCompleted) -> None:
        js = self.ctx.nc.jetstream()
        for _ in range(20):
            try:
                await js.publish(subjects.event_subject("batch"), encode(completed),
                                 headers={"Nats-Msg-Id": completed.request_id})
                return
            except Exception as exc:  # noqa: BLE001 - the broker restarts: again
                log.info("batch: record of %s not stored yet (%r)", completed.request_id, exc)
                await asyncio.sleep(0.5)

    async def drain(self) -> None:
        for task in self._main:
            await cancel(task)

    async def cleanup(self) -> None:
        for task in list(self.tasks):
            await cancel(task)


setup = BatchWorker.setup


if __name__ == "__main__":
    main("batch", ["batch"])
