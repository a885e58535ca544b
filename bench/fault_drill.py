"""Fault drill: a steady open-loop load while gateway processes are SIGKILLed one after another.

    python bench/fault_drill.py [--rate 40] [--stream-fraction 0.25] [--warmup 5] [--kill-every 5] [--tail 10]
                                [--kinds redaction,policy,...] [--client-retries 2] [--soak S] [--json]

Starts ``gateway up`` (the test config of ``infra/operator/launcher.py``: free ports, a temporary data
dir, the bundled mock provider as the only upstream) and sends ``--rate`` requests a second, each at
its scheduled time (open loop: latency counts from the schedule, retries included), a
``--stream-fraction`` of them streamed. After ``--warmup`` seconds it SIGKILLs one process of each kind
in ``--kinds`` (default: every kind in ``pids.json`` but the mock provider: the stages, then the batch
worker, the sink, ingress, nats-server), ``--kill-every`` seconds apart, then keeps the load on for ``--tail`` seconds.
The client behaves like the official OpenAI SDK (retries 408/409/429/5xx and connection errors,
honouring ``Retry-After``). Then it counts, per segment (steady, one per kill, tail): correct answers,
lost requests, interrupted and cut streams, wrong and duplicated answers, 429/503 refusals, retries,
extra provider calls (from the mock's request log) and the ``requests`` rows per request id (through
``gateway sql``), and prints the time each killed process took to come back. Exit status 0 only when
nothing was lost, wrong or answered twice, every request id is exactly one row and the extra provider
calls stay within ``--max-extra-pct``. ``--soak S`` repeats the kill cycle for S seconds and reports
the RSS and open file descriptors of every process. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import string
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import h11
import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fault_drill_report import (  # noqa: E402
    MARKER_RE,
    RETRYABLE,
    UUID_RE,
    Attempt,
    DrillReport,
    KillRecord,
    RequestRecord,
    RequestSpec,
    build_report,
    classify_plain,
    classify_stream,
    default_kinds,
    dump_lines,
    is_stream,
    kind_of,
    make_spec,
    parse_sse,
    plan_kills,
    plan_segments,
    render_report,
    resource_growth,
    retry_after_s,
    sdk_retry_delay,
)
from infra.nats_server import free_port  # noqa: E402
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway  # noqa: E402


@dataclass
class DrillOptions:
    rate: float = 40.0
    stream_fraction: float = 0.25
    warmup_s: float = 5.0
    kill_every_s: float = 5.0
    tail_s: float = 10.0
    kinds: list[str] | None = None  # None: default_kinds(pids.json)
    client_retries: int = 2
    soak_s: float = 0.0
    sample_every_s: float = 10.0
    max_extra_pct: float = 2.0
    request_timeout_s: float = 60.0  # per attempt, like an SDK timeout
    drain_timeout_s: float = 90.0  # how long to wait for outstanding requests after the load
    rows_timeout_s: float = 45.0  # how long the sink gets to write every row
    mock_poll_s: float = 2.0
    latency_ms: int = 30
    chunk_delay_ms: int = 20
    seed: int | None = None
    same_victim: bool = False  # always kill the first process of a kind: the others live through a soak


class _Run:
    """The state of one drill against a running gateway."""

    def __init__(self, gw: RunningGateway, options: DrillOptions, kinds: list[str],
                 log: Callable[[str], None], dump: Path | None = None) -> None:
        self.gw, self.o, self.kinds, self.log, self.dump = gw, options, kinds, log, dump
        self.rng = random.Random(options.seed)
        self.kill_plan = plan_kills(kinds, options.warmup_s, options.kill_every_s, options.soak_s)
        self.segments = plan_segments(self.kill_plan, options.warmup_s, options.kill_every_s, options.tail_s)
        self.duration = self.segments[-1].end
        self.records: list[RequestRecord] = []
        self.kills: list[KillRecord] = []
        self.calls: Counter[str] = Counter()
        self.mock_seq = 0
        self.mock_errors = 0
        self.notes: list[str] = []
        self.samples: list[tuple[float, dict[str, tuple[int, int, int]]]] = []
        self.t0 = 0.0
        self.load_done = asyncio.Event()
        self.collected = asyncio.Event()  # set when every observation may stop

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- load

    def spec(self, index: int) -> RequestSpec:
        nonce = "".join(self.rng.choices(string.ascii_lowercase, k=8))
        return make_spec(index, index / self.o.rate, is_stream(index, self.o.stream_fraction), nonce,
                         self.o.latency_ms, self.o.chunk_delay_ms)

    async def load(self) -> list[asyncio.Task[None]]:
        tasks: list[asyncio.Task[None]] = []
        index = 0
        while (due := index / self.o.rate) < self.duration:
            wait = due - self.now()
            if wait > 0:
                await asyncio.sleep(wait)
            record = RequestRecord(self.spec(index))
            self.records.append(record)
            tasks.append(asyncio.create_task(self.request(record)))
            index += 1
        self.load_done.set()
        return tasks

    async def request(self, record: RequestRecord) -> None:
        for n in range(self.o.client_retries + 1):
            attempt = await self.attempt(record.spec)
            record.attempts.append(attempt)
            if attempt.outcome != RETRYABLE or n == self.o.client_retries:
                break
            await asyncio.sleep(sdk_retry_delay(n, attempt.retry_after, self.rng.random()))
        record.finished = record.attempts[-1].ended

    async def attempt(self, spec: RequestSpec) -> Attempt:
        started = self.now()
        answer = await http_post(self.gw.port, "/v1/chat/completions", orjson.dumps(spec.body()),
                                 self.o.request_timeout_s)
        ended = self.now()
        if answer.status is None:  # no answer at all: the SDK retries
            return Attempt(started, ended, None, RETRYABLE, detail=answer.error)
        request_id = answer.headers.get("x-gateway-request-id", "")
        hint = retry_after_s(answer.headers)
        if answer.status == 200 and spec.stream:
            outcome, detail = classify_stream(parse_sse(bytes(answer.body)), answer.complete, spec.expected,
                                              answer.timed_out)
            return Attempt(started, ended, 200, outcome, request_id,
                           detail + (f" ({answer.error})" if answer.error else ""))
        if answer.status == 200 and not answer.complete:  # the SDK raises on reading it, and retries
            return Attempt(started, ended, 200, RETRYABLE, request_id, f"body cut short: {answer.error}")
        outcome, detail = classify_plain(answer.status, bytes(answer.body), spec.expected)
        return Attempt(started, ended, answer.status, outcome, request_id, detail, hint)

    # -- kills

    def read_pids(self) -> dict[str, int]:
        try:
            return self.gw.pids()
        except (OSError, ValueError):
            return {}

    async def kill_loop(self) -> None:
        turns: Counter[str] = Counter()
        watchers: list[asyncio.Task[None]] = []
        for at, kind in self.kill_plan:
            wait = at - self.now()
            if wait > 0:
                await asyncio.sleep(wait)
            pids = self.read_pids()  # re-read right before: the supervisor rewrites it after restarts
            names = sorted(n for n in pids if kind_of(n) == kind)
            record = KillRecord(round(self.now(), 3), kind)
            if not names:
                record.error = f"no {kind} process in pids.json"
            else:
                record.name = names[0 if self.o.same_victim else turns[kind] % len(names)]
                turns[kind] += 1
                record.pid = pids[record.name]
                try:
                    os.kill(record.pid, signal.SIGKILL)
                except ProcessLookupError:
                    record.error, record.pid = f"pid {pids[record.name]} already gone", None
            self.kills.append(record)
            if record.pid is not None:
                self.log(f"t={record.at:6.1f}s  SIGKILL {record.name} (pid {record.pid})")
                watchers.append(asyncio.create_task(self.watch_replacement(record)))
            else:
                self.log(f"t={record.at:6.1f}s  could not kill {kind}: {record.error}")
        await asyncio.gather(*watchers)

    async def watch_replacement(self, kill: KillRecord) -> None:
        while not self.collected.is_set():
            pid = self.read_pids().get(kill.name)
            if pid is not None and pid != kill.pid and _alive(pid):
                kill.new_pid, kill.replaced_after_s = pid, round(self.now() - kill.at, 3)
                self.log(f"t={self.now():6.1f}s  {kill.name} is back as pid {pid} "
                         f"({kill.replaced_after_s:.2f}s after the kill)")
                return
            await asyncio.sleep(0.05)

    # -- observation

    async def poll_mock(self, admin: httpx.AsyncClient) -> None:
        """Reads the mock's new requests every ``mock_poll_s`` until collection ends, then once more."""
        while True:
            final = self.collected.is_set()
            try:
                entries = (await admin.get("/_mock/requests", params={"after": self.mock_seq})).json()
            except (httpx.HTTPError, ValueError) as exc:
                if not self.mock_errors:
                    self.notes.append(f"mock request log unreadable at {self.now():.1f}s ({type(exc).__name__}): "
                                      "provider calls may be undercounted")
                self.mock_errors += 1
                entries = []
            if entries and entries[0]["seq"] > self.mock_seq + 1 and self.mock_seq:
                self.notes.append(f"the mock's request log rolled over: {entries[0]['seq'] - self.mock_seq - 1} "
                                  "provider calls not counted")
            for entry in entries:
                self.mock_seq = max(self.mock_seq, int(entry["seq"]))
                body = entry.get("body")
                text = body if isinstance(body, str) else orjson.dumps(body).decode()
                self.calls.update(set(MARKER_RE.findall(text)))
            if final:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.collected.wait(), timeout=self.o.mock_poll_s)

    async def sample_loop(self) -> None:
        while not self.load_done.is_set():
            pids = dict(self.read_pids())
            pids["gateway-up"] = self.gw.process.pid
            sample = {name: s for name, pid in pids.items() if (s := _proc_sample(pid)) is not None}
            self.samples.append((round(self.now(), 3), sample))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.load_done.wait(), timeout=self.o.sample_every_s)
        pids = dict(self.read_pids())
        pids["gateway-up"] = self.gw.process.pid
        self.samples.append((round(self.now(), 3), {n: s for n, p in pids.items() if (s := _proc_sample(p))}))

    def count_rows(self, ids: Sequence[str], chunk: int = 300) -> dict[str, int]:
        """``requests`` rows per id (ids without a row are absent), ``chunk`` ids per query."""
        rows: dict[str, int] = {}
        for i in range(0, len(ids), chunk):
            id_list = ", ".join(f"'{rid}'" for rid in ids[i:i + chunk])
            for row in self.gw.sql(f"SELECT toString(request_id) AS id, count() AS n FROM requests "
                                   f"WHERE request_id IN ({id_list}) GROUP BY request_id"):
                rows[str(row["id"])] = int(row["n"])
        return rows

    async def collect_rows(self) -> tuple[dict[str, int] | None, str]:
        """Rows per request id, once every id has one and two reads agree, or at the timeout (then the
        last read)."""
        seen = {rid for r in self.records for rid in r.request_ids}
        ids = sorted(rid for rid in seen if UUID_RE.fullmatch(rid))
        if len(ids) < len(seen):
            self.notes.append(f"{len(seen) - len(ids)} x-gateway-request-id values are not UUIDs: not looked up")
        deadline = time.monotonic() + self.o.rows_timeout_s
        last: dict[str, int] | None = None
        error = ""
        while True:
            try:
                rows = await asyncio.to_thread(self.count_rows, ids)
                error = ""
            except (AssertionError, OSError, ValueError) as exc:  # gateway sql failed (e.g. NATS is down)
                rows, error = None, str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else repr(exc)
            if rows is not None and rows == last and all(rows.get(i, 0) >= 1 for i in ids):
                return rows, ""
            last = rows if rows is not None else last
            if time.monotonic() >= deadline:
                return last, error
            await asyncio.sleep(1.0)

    # -- the whole run

    async def run(self) -> DrillReport:
        self.log(f"drill: {self.duration:.0f}s of load at {self.o.rate} req/s; kills: "
                 + (", ".join(f"{kind}@{at:.0f}s" for at, kind in self.kill_plan) or "none"))
        async with httpx.AsyncClient(base_url=self.gw.mock_url, timeout=10) as admin:
            with contextlib.suppress(httpx.HTTPError, ValueError, IndexError, KeyError):
                self.mock_seq = int((await admin.get("/_mock/requests")).json()[-1]["seq"])
            self.t0 = time.monotonic()
            cpu0 = time.process_time()
            poller = asyncio.create_task(self.poll_mock(admin))
            killer = asyncio.create_task(self.kill_loop())
            sampler = asyncio.create_task(self.sample_loop()) if self.o.soak_s > 0 else None
            tasks = await self.load()
            cpu = time.process_time() - cpu0
            self.notes.append(f"load generator CPU during the load: {cpu:.1f}s over {self.now():.0f}s "
                              f"({100 * cpu / max(self.now(), 1e-9):.0f}% of a core)")
            self.log(f"t={self.now():6.1f}s  load ended: {len(tasks)} requests; waiting for the outstanding ones")
            pending: set[asyncio.Task[None]] = set()
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=self.o.drain_timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                self.notes.append(f"{len(pending)} requests still unanswered {self.o.drain_timeout_s:.0f}s after "
                                  "the load ended: counted as lost")
                await asyncio.gather(*pending, return_exceptions=True)
            self.log(f"t={self.now():6.1f}s  all answered or given up; reading the requests rows")
            rows, rows_error = await self.collect_rows()
            if rows is not None and rows_error:
                self.notes.append(f"gateway sql failed on the last read (rows are from the one before): {rows_error}")
            self.collected.set()
            await asyncio.gather(poller, killer)
            if sampler is not None:
                await sampler
        cycle_end = self.o.warmup_s + len(self.kinds) * self.o.kill_every_s
        resources = resource_growth(self.samples, max(60.0, cycle_end)) if self.o.soak_s > 0 else []
        options = {**asdict(self.o), "kinds": self.kinds}
        if self.dump is not None:
            lines = dump_lines(self.records, self.segments, self.kills, self.calls, rows)
            self.dump.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        return build_report(self.records, self.segments, self.kills, self.calls, rows, rows_error=rows_error,
                            max_extra_pct=self.o.max_extra_pct, options=options, resources=resources,
                            notes=self.notes)


@dataclass
class Answer:
    status: int | None  # None: no response head arrived
    headers: dict[str, str]  # lower-cased names
    body: bytearray
    complete: bool  # the whole body arrived
    error: str = ""  # what went wrong, if anything
    timed_out: bool = False  # the answer did not complete within the timeout


async def http_post(port: int, path: str, payload: bytes, timeout_s: float, host: str = "127.0.0.1") -> Answer:
    """One POST on its own connection (HTTP/1.1 via h11, ``connection: close``), the body read to its end.

    The drill's client: one connection per attempt, nothing pooled, so thousands of requests stuck in a
    stalled gateway cost nothing to the rest (httpx's pool rescans its whole queue on every event and
    starved this process at ~2,000 pending requests), and an idle keep-alive connection the server
    closed can never pass for a gateway failure. Errors are named after httpx's."""
    answer = Answer(None, {}, bytearray(), False)
    writer: asyncio.StreamWriter | None = None
    phase = "Connect"
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
            phase = "Read"
            conn = h11.Connection(h11.CLIENT)
            head = h11.Request(method="POST", target=path, headers=[
                ("host", f"{host}:{port}"), ("authorization", f"Bearer {DEMO_KEY}"),
                ("content-type", "application/json"), ("content-length", str(len(payload))),
                ("connection", "close")])
            writer.write(conn.send(head) + conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage()))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Response):
                    answer.status = event.status_code
                    answer.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    answer.body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    answer.complete = True
                    return answer
                elif isinstance(event, h11.ConnectionClosed):
                    answer.error = "ConnectionClosed"
                    return answer
    except TimeoutError:
        answer.timed_out = True
        answer.error = f"{phase}Timeout: no {'connection' if phase == 'Connect' else 'complete answer'} " \
                       f"within {timeout_s:g}s"
    except (OSError, h11.ProtocolError) as exc:
        if phase == "Connect":
            answer.error = f"ConnectError: {exc}"
        elif answer.status is None:
            answer.error = f"RemoteProtocolError: server disconnected without sending a response ({exc})"
        else:
            answer.error = f"RemoteProtocolError: body cut short ({exc})"
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return answer


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _proc_sample(pid: int) -> tuple[int, int, int] | None:
    """(pid, VmRSS kB, open fds) of a live process, or None."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return pid, rss, fds


def run_drill(options: DrillOptions, gateway: RunningGateway | None = None, root: Path | None = None,
              replicas: list[str] | None = None, log: Callable[[str], None] | None = None,
              dump: Path | None = None, layout: str | None = None, cache: str | None = None) -> DrillReport:
    """Runs the drill against ``gateway``, or against a gateway started (and stopped) here under ``root``
    (a temporary directory when None). ``dump``: write one JSON line per request there. ``cache``: the
    response cache's mode for the whole config (``exact``, ``semantic``): every request is still unique,
    so each is looked up, missed, called and stored while processes die."""
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    if gateway is not None:
        return _run_on(gateway, options, say, dump)
    with tempfile.TemporaryDirectory(prefix="gw-fault-drill-") as tmp:
        base = root or Path(tmp)
        say(f"starting the gateway under {base / 'gw'}")
        config = gateway_config(free_port(), cache={"mode": cache, "ttl_s": 3600}) if cache else None
        gw = start_gateway(base / "gw", config, replicas=replicas, layout=layout)
        try:
            return _run_on(gw, options, say, dump)
        finally:
            say("stopping the gateway")
            gw.stop()


def _run_on(gw: RunningGateway, options: DrillOptions, log: Callable[[str], None],
            dump: Path | None = None) -> DrillReport:
    kinds = list(options.kinds) if options.kinds is not None else default_kinds(gw.pids())
    return asyncio.run(_Run(gw, options, kinds, log, dump).run())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = DrillOptions()
    parser.add_argument("--rate", type=float, default=d.rate, help="requests per second (default %(default)s)")
    parser.add_argument("--stream-fraction", type=float, default=d.stream_fraction,
                        help="share of streamed requests (default %(default)s)")
    parser.add_argument("--warmup", type=float, default=d.warmup_s, help="seconds before the first kill")
    parser.add_argument("--kill-every", type=float, default=d.kill_every_s, help="seconds between kills")
    parser.add_argument("--tail", type=float, default=d.tail_s, help="seconds of load after the last kill segment")
    parser.add_argument("--kinds", action="append", default=None, metavar="KIND[,KIND...]",
                        help="process kinds to kill, in order (default: every kind in pids.json but mock_provider: "
                             "the stages, batch, sink, ingress, nats-server)")
    parser.add_argument("--client-retries", type=int, default=d.client_retries,
                        help="retries per request, like the OpenAI SDK's max_retries (default %(default)s)")
    parser.add_argument("--soak", type=float, default=d.soak_s, metavar="S",
                        help="repeat the kill cycle for S seconds and report RSS and fds per process")
    parser.add_argument("--same-victim", action="store_true",
                        help="always kill the first process of a kind (stages.0, ingress.0): the other replicas "
                             "live through the whole soak, so their RSS and fds show any leak")
    parser.add_argument("--sample-every", type=float, default=d.sample_every_s,
                        help="seconds between resource samples with --soak (default %(default)s)")
    parser.add_argument("--max-extra-pct", type=float, default=d.max_extra_pct,
                        help="fail when extra provider calls exceed this %% of requests sent (default %(default)s)")
    parser.add_argument("--request-timeout", type=float, default=d.request_timeout_s,
                        help="client timeout per attempt, seconds (default %(default)s)")
    parser.add_argument("--drain-timeout", type=float, default=d.drain_timeout_s,
                        help="seconds to wait for outstanding requests after the load (default %(default)s)")
    parser.add_argument("--rows-timeout", type=float, default=d.rows_timeout_s,
                        help="seconds the sink gets to write every row (default %(default)s)")
    parser.add_argument("--replicas", action="append", default=[], metavar="NAME=N", help="passed to gateway up")
    parser.add_argument("--layout", choices=["hosted", "split"], default=None, help="passed to gateway up")
    parser.add_argument("--cache", choices=["exact", "semantic"], default=None,
                        help="turn the response cache on for every request (each still unique: all misses)")
    parser.add_argument("--seed", type=int, default=None, help="seeds the nonces and the retry jitter")
    parser.add_argument("--root", type=Path, default=None, help="keep the gateway's data dir and logs here")
    parser.add_argument("--dump", type=Path, default=None, metavar="PATH",
                        help="write one JSON line per request (segment, outcome, attempts, provider calls, rows)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args(argv)
    kinds = [k.strip() for item in args.kinds for k in item.split(",") if k.strip()] if args.kinds else None
    options = DrillOptions(rate=args.rate, stream_fraction=args.stream_fraction, warmup_s=args.warmup,
                           kill_every_s=args.kill_every, tail_s=args.tail, kinds=kinds,
                           client_retries=args.client_retries, soak_s=args.soak, sample_every_s=args.sample_every,
                           max_extra_pct=args.max_extra_pct, request_timeout_s=args.request_timeout,
                           drain_timeout_s=args.drain_timeout, rows_timeout_s=args.rows_timeout, seed=args.seed,
                           same_victim=args.same_victim)
    report = run_drill(options, root=args.root, replicas=args.replicas, dump=args.dump, layout=args.layout,
                        cache=args.cache)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, default=str))
    else:
        print(render_report(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
