"""Overload drill: an open-loop rate above what the gateway can serve. It must shed, never collapse.

    python bench/overload_drill.py [--factor 2.0] [--duration 15] [--rate R] [--latency-ms 30] [--json]

Starts ``gateway up`` (the test config of ``infra/operator/launcher.py``, free ports, a temporary data
dir), measures what it serves with 64 connections in a closed loop (its capacity on this machine, now),
then sends ``--factor`` times that rate (or ``--rate``) open loop for ``--duration`` seconds, each
request at its scheduled time on its own connection (``bench.fault_drill.http_post``), no retries.
It reports what a caller gets: answers served and their latency from the scheduled time, refusals
(429/503 with ``Retry-After``) and how fast they came, anything else (timeouts, 5xx, connection errors),
and goodput (correct answers per second) against the capacity. A gateway that collapses answers late or
with 504s; one that sheds serves about its capacity at a bounded latency and refuses the rest at once.
Only 127.0.0.1 is contacted; nothing here is judged by wall-clock time in a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.fault_drill import http_post  # noqa: E402
from infra.operator.launcher import RunningGateway, start_gateway  # noqa: E402

PATH = "/v1/chat/completions"


@dataclass
class Outcomes:
    sent: int = 0
    served_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)
    refused_without_retry_after: int = 0
    other: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)


def body(index: int, latency_ms: int) -> bytes:
    return orjson.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": f"overload r{index:06d}: summarise this for me [[mock latency_ms={latency_ms}]]"}]})


async def one(port: int, index: int, scheduled: float, latency_ms: int, out: Outcomes) -> None:
    answer = await http_post(port, PATH, body(index, latency_ms), 60.0)
    took = (time.perf_counter() - scheduled) * 1000
    if answer.status == 200 and answer.complete:
        text = orjson.loads(bytes(answer.body))["choices"][0]["message"]["content"]
        if text.startswith(f"Echo: overload r{index:06d}"):
            out.served_ms.append(took)
        else:
            out.other["wrong answer"] += 1
    elif answer.status in (429, 503):
        out.refused_ms.append(took)
        if "retry-after" not in answer.headers:
            out.refused_without_retry_after += 1
        try:
            out.codes[str(orjson.loads(bytes(answer.body))["error"]["code"])] += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            out.codes["?"] += 1
    else:
        out.other[str(answer.status) if answer.status is not None else answer.error.split(":")[0]] += 1


async def open_loop(port: int, rate: float, duration_s: float, latency_ms: int) -> Outcomes:
    out = Outcomes()
    tasks: list[asyncio.Task[None]] = []
    start = time.perf_counter()
    while (due := out.sent / rate) < duration_s:
        wait = start + due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(port, out.sent, start + due, latency_ms, out)))
        out.sent += 1
    await asyncio.gather(*tasks)
    return out


async def capacity(port: int, connections: int, duration_s: float, latency_ms: int) -> float:
    """Correct answers per second with ``connections`` requests always in flight."""
    served = 0
    stop = time.perf_counter() + duration_s

    async def worker(w: int) -> None:
        nonlocal served
        i = 0
        while time.perf_counter() < stop:
            answer = await http_post(port, PATH, body(w * 1_000_000 + i, latency_ms), 30.0)
            served += answer.status == 200
            i += 1

    await asyncio.gather(*(worker(w) for w in range(connections)))
    return served / duration_s


def pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else None


def run(gw: RunningGateway, factor: float, duration_s: float, rate: float | None, latency_ms: int) -> dict[str, Any]:
    cap = asyncio.run(capacity(gw.port, 64, 5.0, latency_ms))
    offered = rate or factor * cap
    out = asyncio.run(open_loop(gw.port, offered, duration_s, latency_ms))
    return {
        "capacity_rps": round(cap, 1), "offered_rps": round(offered, 1), "duration_s": duration_s,
        "sent": out.sent, "served": len(out.served_ms), "goodput_rps": round(len(out.served_ms) / duration_s, 1),
        "served_p50_ms": pct(out.served_ms, 0.5), "served_p99_ms": pct(out.served_ms, 0.99),
        "served_max_ms": round(max(out.served_ms), 1) if out.served_ms else None,
        "refused": len(out.refused_ms), "refused_p50_ms": pct(out.refused_ms, 0.5),
        "refused_p99_ms": pct(out.refused_ms, 0.99), "refusal_codes": dict(out.codes),
        "refused_without_retry_after": out.refused_without_retry_after, "other": dict(out.other),
    }


def report(f: dict[str, Any]) -> None:
    print(f"\nOverload drill: capacity {f['capacity_rps']} req/s (64 connections, closed loop), offered "
          f"{f['offered_rps']} req/s open loop for {f['duration_s']:g} s\n")
    print("| | requests | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
    print(f"| served (correct) | {f['served']} | {f['served_p50_ms']} | {f['served_p99_ms']} | {f['served_max_ms']} |")
    print(f"| refused 429/503 | {f['refused']} | {f['refused_p50_ms']} | {f['refused_p99_ms']} | |")
    print(f"| anything else | {sum(f['other'].values())} | | | |")
    print(f"\ngoodput {f['goodput_rps']} req/s ({100 * f['goodput_rps'] / max(f['capacity_rps'], 1e-9):.0f}% of "
          f"capacity); refusal codes {f['refusal_codes']}; refusals without Retry-After: "
          f"{f['refused_without_retry_after']}; other outcomes: {f['other'] or 'none'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=float, default=2.0, help="offered rate / measured capacity")
    parser.add_argument("--rate", type=float, default=None, help="offered rate instead of factor x capacity")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--latency-ms", type=int, default=30, help="the mock provider's latency")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gw-overload-") as tmp:
        gw = start_gateway(Path(tmp) / "gw")
        try:
            figures = run(gw, args.factor, args.duration, args.rate, args.latency_ms)
        finally:
            gw.stop()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)
    return 0 if not figures["other"] and not figures["refused_without_retry_after"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
