"""A cheap HTTP/1.1 load generator: asyncio, raw keep-alive sockets, pre-built request bytes.

Two modes:

* ``closed``: ``--connections`` connections each send back-to-back for ``--duration`` seconds
  (the maximum request rate the server sustains at that concurrency);
* ``open``: a fixed arrival rate ``--rate`` req/s for ``--duration`` seconds, spread over a pool of
  ``--connections`` connections. Latency is measured from the *scheduled* send time, so a request that
  waits for a free connection (queueing) is counted as slow: no coordinated omission.

A warm-up period (``--warmup``) runs first and is not counted. Responses are parsed minimally: status
line, headers up to the blank line, then a ``Content-Length`` body (``chunked`` is read too, slowly).
Run it as its own process (``python -m bench.loadgen ...``) so its CPU never shares a GIL with what is
measured; it prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    request: bytes


@dataclass
class Stats:
    """What the workers record; only requests *scheduled or sent* inside the measured window count."""

    measure_start: float = 0.0
    measure_end: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    total_done: int = 0  # every completed request, warm-up included (for CPU per request)
    sample_body: str | None = None
    error_samples: dict[str, str] = field(default_factory=dict)

    def record(self, t_ref: float, t_done: float, status: int, body: bytes) -> None:
        self.total_done += 1
        if self.sample_body is None and 200 <= status < 300:
            self.sample_body = body[:2000].decode(errors="replace")
        if not self.measure_start <= t_ref < self.measure_end:
            return
        if 200 <= status < 300:
            self.latencies.append(t_done - t_ref)
        else:
            key = str(status)
            self.errors[key] += 1
            self.error_samples.setdefault(key, body[:500].decode(errors="replace"))

    def record_error(self, t_ref: float, kind: str, detail: str) -> None:
        if self.measure_start <= t_ref < self.measure_end:
            self.errors[kind] += 1
            self.error_samples.setdefault(kind, detail[:500])


def build_target(url: str, method: str, body: bytes, headers: list[str]) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise SystemExit(f"loadgen: only http:// URLs are supported, got {url!r}")
    port = parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.hostname}:{port}", "Connection: keep-alive"]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(headers)
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return Target(parts.hostname, port, head + body)


class Connection:
    """One keep-alive connection; reconnects lazily after an error or ``Connection: close``."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.target.host, self.target.port)
        self.reader, self.writer = reader, writer
        return reader, writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            reader, writer = await self._connect()
        else:
            reader, writer = self.reader, self.writer
        writer.write(self.target.request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        chunked = False
        close = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            lname = name.strip().lower()
            if lname == b"content-length":
                length = int(value)
            elif lname == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif lname == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            body = await self._read_chunked(reader)
        elif length >= 0:
            body = await reader.readexactly(length)
        else:  # no framing: the body runs until the server closes
            body = await reader.read()
            close = True
        if close:
            self.close()
        return status, body

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)


async def _one(conn: Connection, stats: Stats, t_ref: float) -> None:
    try:
        status, body = await conn.request()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
        conn.close()
        stats.record_error(t_ref, "socket", repr(exc))
        await asyncio.sleep(0.01)  # do not spin when the server is down
        return
    stats.record(t_ref, time.perf_counter(), status, body)


async def run_closed(target: Target, connections: int, duration: float, warmup: float, grace: float) -> Stats:
    start = time.perf_counter()
    stats = Stats(measure_start=start + warmup, measure_end=start + warmup + duration)

    async def worker() -> None:
        conn = Connection(target)
        try:
            while (t_sent := time.perf_counter()) < stats.measure_end:
                await _one(conn, stats, t_sent)
        finally:
            conn.close()

    await _gather_bounded([worker() for _ in range(connections)], stats.measure_end + grace, stats)
    return stats


async def run_open(target: Target, rate: float, connections: int, duration: float, warmup: float,
                   grace: float) -> Stats:
    start = time.perf_counter() + 0.05
    stats = Stats(measure_start=start + warmup, measure_end=start + warmup + duration)
    interval = 1.0 / rate
    count = int((warmup + duration) * rate)
    queue: asyncio.Queue[float | None] = asyncio.Queue()

    async def dispatcher() -> None:
        for i in range(count):
            t_sched = start + i * interval
            delay = t_sched - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait(t_sched)
        for _ in range(connections):
            queue.put_nowait(None)

    async def worker() -> None:
        conn = Connection(target)
        try:
            while (t_sched := await queue.get()) is not None:
                await _one(conn, stats, t_sched)
        finally:
            conn.close()

    jobs: list[Coroutine[Any, Any, None]] = [dispatcher(), *(worker() for _ in range(connections))]
    await _gather_bounded(jobs, stats.measure_end + grace, stats, queue)
    return stats


async def _gather_bounded(jobs: list[Coroutine[Any, Any, None]], deadline: float, stats: Stats,
                          queue: asyncio.Queue[float | None] | None = None) -> None:
    """Run the jobs; at the deadline cancel what is left and count unfinished measured requests as errors."""
    tasks = [asyncio.ensure_future(j) for j in jobs]
    _done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()))
    if pending:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # A cancelled worker had one request in flight; requests still queued were never sent.
        stats.errors["unfinished"] += len(pending) - (1 if tasks[0] in pending and queue is not None else 0)
        if queue is not None:
            while not queue.empty():
                item = queue.get_nowait()
                if item is not None and stats.measure_start <= item < stats.measure_end:
                    stats.errors["unfinished"] += 1


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


def summarise(stats: Stats, mode: str, duration: float, connections: int, rate: float | None) -> dict[str, Any]:
    lat = sorted(stats.latencies)
    ok = len(lat)
    errors = sum(stats.errors.values())

    def ms(value: float) -> float:
        return round(value * 1000.0, 3)

    return {
        "mode": mode,
        "connections": connections,
        "rate_target": rate,
        "duration_s": duration,
        "requests": ok + errors,
        "ok": ok,
        "errors": errors,
        "errors_by_status": dict(stats.errors),
        "error_samples": stats.error_samples,
        "rps": round((ok + errors) / duration, 1),
        "ok_rps": round(ok / duration, 1),
        "p50_ms": ms(_percentile(lat, 0.50)),
        "p90_ms": ms(_percentile(lat, 0.90)),
        "p99_ms": ms(_percentile(lat, 0.99)),
        "max_ms": ms(lat[-1]) if lat else float("nan"),
        "mean_ms": ms(sum(lat) / ok) if ok else float("nan"),
        "total_done": stats.total_done,
        "sample_body": stats.sample_body,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", required=True, help="http://host:port/path")
    p.add_argument("--mode", choices=["closed", "open"], default="closed")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rate", type=float, default=100.0, help="open mode: arrivals per second")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds run first and not counted")
    p.add_argument("--grace", type=float, default=10.0, help="seconds allowed after the end for in-flight requests")
    p.add_argument("--method", default="POST")
    p.add_argument("--body", default="", help="request body (string)")
    p.add_argument("--body-file", help="request body from a file (overrides --body)")
    p.add_argument("--header", action="append", default=[], metavar="'Name: value'")
    args = p.parse_args(argv)
    if args.connections < 1 or args.duration <= 0 or args.warmup < 0 or args.rate <= 0:
        p.error("--connections >= 1, --duration > 0, --warmup >= 0 and --rate > 0 are required")
    return args


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    if args.body_file:
        with open(args.body_file, "rb") as f:
            body = f.read()
    else:
        body = args.body.encode()
    target = build_target(args.url, args.method, body, args.header)
    if args.mode == "closed":
        stats = await run_closed(target, args.connections, args.duration, args.warmup, args.grace)
        return summarise(stats, "closed", args.duration, args.connections, None)
    stats = await run_open(target, args.rate, args.connections, args.duration, args.warmup, args.grace)
    return summarise(stats, "open", args.duration, args.connections, args.rate)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(amain(args))
    else:
        result = uvloop.run(amain(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
