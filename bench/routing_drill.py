"""Reliability drill: a flaky target, a slow target, a steady load, a breaker and a hot reload.

    python bench/routing_drill.py [--rate 40] [--flaky-s 8] [--recovered-s 8] [--json]

Starts ``gateway up`` (free ports, temporary data dir) with one alias routed by least latency over
two targets on the bundled mock provider:

- target A (``drill-a``) is fast but fails 50% of its requests with a 503 (the mock's scripted fault);
- target B (``drill-b``) always answers, 150 ms late.

A steady open-loop load runs at ``--rate`` req/s through three phases: A flaky (its breaker must
open: the gateway stops sending it traffic), a config reload in the middle (the file is rewritten; no
request may fail), then A recovered (after the cool-down the half-open probe succeeds and the breaker
closes). It prints the success rate, p50/p99 latency per phase, the breaker transitions recorded in
ClickHouse (``gateway_events``) and the config versions that served requests. ``tests/e2e`` runs it
short and asserts on the counts; nothing here is judged by wall-clock time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway  # noqa: E402

ALIAS = "drill"
FLAKY, SLOW = "drill-a", "drill-b"


def drill_config(mock_port: int, cooldown_s: float, weight_b: float = 1.0) -> dict[str, Any]:
    config = gateway_config(mock_port)
    config["models"][ALIAS] = {"route": {
        "type": "loadbalance", "strategy": "least_latency", "retry": {"attempts_per_target": 1},
        "children": [{"provider": "mock-openai", "model": FLAKY},
                     {"provider": "mock-openai", "model": SLOW, "weight": weight_b}]}}
    config["circuit_breaker"] = {"window_s": 5, "min_requests": 8, "failure_rate": 0.3, "cooldown_s": cooldown_s,
                                 "half_open_probes": 1}
    return config


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, Any]:
        done = sorted(self.latencies_ms)
        total = len(done) + len(self.failures)

        def pct(q: float) -> float | None:
            return round(done[min(len(done) - 1, int(q * len(done)))], 1) if done else None

        return {"phase": self.name, "requests": total, "ok": len(done),
                "success_rate": round(len(done) / total, 4) if total else None,
                "p50_ms": pct(0.5), "p99_ms": pct(0.99), "failures": self.failures[:5]}


async def load(client: httpx.AsyncClient, phase: Phase, rate: float, duration_s: float) -> None:
    body = {"model": ALIAS, "messages": [{"role": "user", "content": "Say something short about reliability."}]}
    tasks: list[asyncio.Task[None]] = []

    async def one() -> None:
        started = time.perf_counter()
        try:
            response = await client.post("/v1/chat/completions", json=body)
        except httpx.HTTPError as exc:
            phase.failures.append(f"{type(exc).__name__}: {exc}")
            return
        if response.status_code == 200:
            phase.latencies_ms.append((time.perf_counter() - started) * 1000)
        else:
            phase.failures.append(f"{response.status_code}: {response.text[:200]}")

    start = time.perf_counter()
    n = 0
    while (now := time.perf_counter() - start) < duration_s:
        due = n / rate
        if due > now:
            await asyncio.sleep(due - now)
        tasks.append(asyncio.create_task(one()))
        n += 1
    await asyncio.gather(*tasks)


def faults(gw: RunningGateway, flaky: bool) -> None:
    httpx.delete(f"{gw.mock_url}/_mock/faults", timeout=5).raise_for_status()
    httpx.post(f"{gw.mock_url}/_mock/faults", json={"fault": "latency_ms=150", "model": SLOW},
               timeout=5).raise_for_status()
    if flaky:
        httpx.post(f"{gw.mock_url}/_mock/faults", json={"fault": "status=503", "model": FLAKY, "rate": 0.5,
                                                        "seed": 7}, timeout=5).raise_for_status()


def breaker_state(gw: RunningGateway) -> list[dict[str, Any]]:
    return gw.sql("SELECT subject, from_state, to_state, reason, toString(ts) AS ts FROM gateway_events "
                  "WHERE kind = 'breaker' ORDER BY ts")


async def drill(gw: RunningGateway, rate: float, flaky_s: float, recovered_s: float,
                cooldown_s: float) -> dict[str, Any]:
    phases = [Phase("A flaky"), Phase("reload"), Phase("A recovered")]
    config_path = gw.root / "gateway.yaml"
    async with httpx.AsyncClient(base_url=gw.base_url, headers={"authorization": f"Bearer {DEMO_KEY}"},
                                 timeout=30, limits=httpx.Limits(max_connections=256)) as client:
        faults(gw, flaky=True)
        await load(client, phases[0], rate, flaky_s)
        # the reload, under load: a new weight for B, written to the file the gateway watches
        reload_task = asyncio.create_task(load(client, phases[1], rate, 4.0))
        await asyncio.sleep(1.0)
        config_path.write_text(yaml.safe_dump(drill_config(gw.mock_port, cooldown_s, weight_b=2.0)))
        await reload_task
        faults(gw, flaky=False)
        await load(client, phases[2], rate, recovered_s)
    opened = closed = False
    transitions: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the sink writes every ~0.5 s
        transitions = [t for t in breaker_state(gw) if t["subject"] == f"mock-openai/{FLAKY}"]
        opened = any(t["to_state"] == "open" for t in transitions)
        closed = any(t["from_state"] == "half_open" and t["to_state"] == "closed" for t in transitions)
        if opened and closed:
            break
        await asyncio.sleep(0.5)
    versions = gw.sql(f"SELECT config_version, count() AS n FROM requests WHERE model_requested = '{ALIAS}' "
                      "GROUP BY config_version ORDER BY min(ts)")
    served = gw.sql(f"SELECT provider || '/' || model_served AS target, count() AS n FROM requests "
                    f"WHERE model_requested = '{ALIAS}' AND status_code = 200 GROUP BY target ORDER BY target")
    all_ok = sum(len(p.latencies_ms) for p in phases)
    total = all_ok + sum(len(p.failures) for p in phases)
    return {"rate": rate, "phases": [p.figures() for p in phases],
            "success_rate": round(all_ok / total, 4) if total else None, "requests": total,
            "breaker_transitions": transitions, "breaker_opened": opened, "breaker_closed_after_recovery": closed,
            "config_versions": versions, "served_by": served}


def report(f: dict[str, Any]) -> None:
    print(f"\nRouting drill at {f['rate']:.0f} req/s: {f['requests']} requests, success rate "
          f"{100 * (f['success_rate'] or 0):.2f}%\n")
    print(f"{'phase':<14}{'requests':>9}{'ok':>7}{'success':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for p in f["phases"]:
        rate = f"{100 * p['success_rate']:.1f}%" if p["success_rate"] is not None else "-"
        print(f"{p['phase']:<14}{p['requests']:>9}{p['ok']:>7}{rate:>9}{p['p50_ms'] or '-':>9}{p['p99_ms'] or '-':>9}")
        for failure in p["failures"]:
            print(f"    failed: {failure}")
    print(f"\nBreaker transitions of mock-openai/{FLAKY} (from ClickHouse gateway_events):")
    for t in f["breaker_transitions"]:
        print(f"  {t['ts']}  {t['from_state'] or '-':>9} -> {t['to_state']:<9} {t['reason']}")
    print("\nServed by:", ", ".join(f"{r['target']}={r['n']}" for r in f["served_by"]))
    print("Config versions:", ", ".join(f"{r['config_version'] or '?'}={r['n']}" for r in f["config_versions"]))


def run(rate: float, flaky_s: float, recovered_s: float, cooldown_s: float = 2.0,
        root: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="gw-drill-") as tmp:
        base = root or Path(tmp)
        from infra.nats_server import free_port

        mock_port = free_port()
        gw = start_gateway(base / "gw", drill_config(mock_port, cooldown_s))
        try:
            return asyncio.run(drill(gw, rate, flaky_s, recovered_s, cooldown_s))
        finally:
            gw.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--flaky-s", type=float, default=8.0)
    parser.add_argument("--recovered-s", type=float, default=8.0)
    parser.add_argument("--cooldown-s", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    figures = run(args.rate, args.flaky_s, args.recovered_s, args.cooldown_s)
    if args.json:
        print(json.dumps(figures, indent=2, default=str))
    else:
        report(figures)
    return 0 if figures["success_rate"] == 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
