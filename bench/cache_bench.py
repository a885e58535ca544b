"""What the response cache saves: a hit against a miss through the whole gateway, and hits per second.

    python bench/cache_bench.py [--requests 40] [--duration 8] [--connections 64] [--upstream-ms 150] [--json]

Starts the gateway (``gateway up``, every stage on, the test config of ``infra/operator/launcher.py`` with
``cache: {mode: exact}``; the bundled mock provider answering after ``--upstream-ms``, a provider's own
time) and stops it at the end whatever happens. Then:

- **miss**: ``--requests`` requests one after another, each with a prompt never seen (looked up, not
  found, the provider called, the answer stored): p50 / p95;
- **hit**: the same number repeating one prompt already answered: p50 / p95, and what the provider
  stage's lookup costs;
- **64 connections**: closed loop on one cached prompt (``bench.loadgen``, its own process) for
  ``--duration`` seconds, against the same request with ``x-gateway-cache: no-cache`` (every one a
  provider call): requests per second, p50, p99;
- **semantic** (a second gateway, ``cache: {mode: semantic}``): ``--requests`` questions of the labelled
  set (``bench/data/semantic_cache_set.jsonl``) asked once each (a miss: embedded, looked up, the
  provider called, the answer and its question stored), then each asked again reworded with fillers
  ("please, …?"): a semantic hit. The miss against the exact gateway's miss is what the semantic lookup
  adds to a request that is not in the cache.

The semantic cache's accuracy (hit and false-hit rates on paraphrases and near-misses) is
``bench/semantic_eval.py``'s.

Only 127.0.0.1 is contacted. Figures move with the machine: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.nats_server import free_port  # noqa: E402
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway  # noqa: E402

MODEL = "gpt-4o-mini"


def body(prompt: str, upstream_ms: int) -> bytes:
    content = f"{prompt} [[mock latency_ms={upstream_ms}]]"
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": content}]}).encode()


def timed(client: httpx.Client, url: str, payload: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post(url, content=payload, headers={"content-type": "application/json"})
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
    return elapsed, response.headers.get("x-gateway-cache", "")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def loadgen(url: str, payload: bytes, headers: list[str], connections: int, duration: float,
            tmp: Path) -> dict[str, Any]:
    body_file = tmp / f"body-{uuid.uuid4().hex[:6]}.json"
    body_file.write_bytes(payload)
    args = [sys.executable, "-m", "bench.loadgen", "--url", url, "--mode", "closed", "--connections", str(connections),
            "--duration", str(duration), "--warmup", "2", "--grace", "10", "--body-file", str(body_file),
            "--header", "Content-Type: application/json", "--header", f"Authorization: Bearer {DEMO_KEY}"]
    for header in headers:
        args += ["--header", header]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, timeout=duration + 60, start_new_session=True)
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr.decode(errors='replace')[-1000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def measure(opts: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="cache-bench-"))
    gw: RunningGateway | None = None
    try:
        gw = start_gateway(tmp / "gw", gateway_config(free_port(), cache={"mode": "exact", "ttl_s": 3600}))
        url = f"{gw.base_url}/v1/chat/completions"
        with httpx.Client(timeout=30, headers={"authorization": f"Bearer {DEMO_KEY}"}) as client:
            for _ in range(5):  # warm-up: every stage's first request
                timed(client, url, body(f"warm {uuid.uuid4().hex}", opts.upstream_ms))
            misses = [timed(client, url, body(f"miss {uuid.uuid4().hex}", opts.upstream_ms))
                      for _ in range(opts.requests)]
            cached = body(f"hit {uuid.uuid4().hex}", opts.upstream_ms)
            timed(client, url, cached)
            time.sleep(0.5)  # the entry is written just after the answer is sent
            hits = [timed(client, url, cached) for _ in range(opts.requests)]
        statuses = {"miss": sorted({s for _, s in misses}), "hit": sorted({s for _, s in hits})}
        miss_ms, hit_ms = [ms for ms, _ in misses], [ms for ms, _ in hits]
        closed_hits = loadgen(url, cached, [], opts.connections, opts.duration, tmp)
        closed_calls = loadgen(url, cached, ["x-gateway-cache: no-cache"], opts.connections, opts.duration, tmp)
        gw.stop()
        gw = None
        semantic = measure_semantic(opts, tmp)
        return {"semantic": semantic,
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "cores": os.cpu_count(),
            "upstream_ms": opts.upstream_ms, "requests": opts.requests, "statuses": statuses,
            "miss_p50_ms": statistics.median(miss_ms), "miss_p95_ms": quantile(miss_ms, 0.95),
            "hit_p50_ms": statistics.median(hit_ms), "hit_p95_ms": quantile(hit_ms, 0.95),
            "closed_hits": closed_hits, "closed_provider_calls": closed_calls, "connections": opts.connections,
        }
    finally:
        if gw is not None:
            gw.stop()


def measure_semantic(opts: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    groups = [json.loads(line) for line in (ROOT / "bench" / "data" / "semantic_cache_set.jsonl").read_text()
              .splitlines() if line.strip()]
    seeds = [g["seed"].replace("\n", " ") for g in groups][: opts.requests + 5]
    gw = start_gateway(tmp / "semantic", gateway_config(free_port(), cache={"mode": "semantic", "ttl_s": 3600}))
    try:
        url = f"{gw.base_url}/v1/chat/completions"
        with httpx.Client(timeout=30, headers={"authorization": f"Bearer {DEMO_KEY}"}) as client:
            for seed in seeds[:5]:  # warm-up
                timed(client, url, body(f"warm {seed}", opts.upstream_ms))
            misses = [timed(client, url, body(seed, opts.upstream_ms)) for seed in seeds[5:]]
            time.sleep(1.0)  # the answers and their index records are written just after they are sent
            hits = [timed(client, url, body(f"please, {seed.rstrip('?.!')}?", opts.upstream_ms))
                    for seed in seeds[5:]]
        return {"statuses": {"miss": sorted({s for _, s in misses}), "reworded": sorted({s for _, s in hits})},
                "hits": sum(1 for _, s in hits if s == "hit"), "asked": len(hits),
                "miss_p50_ms": statistics.median(ms for ms, _ in misses),
                "miss_p95_ms": quantile([ms for ms, _ in misses], 0.95),
                "hit_p50_ms": statistics.median(ms for ms, s in hits if s == "hit") if any(
                    s == "hit" for _, s in hits) else None,
                "hit_p95_ms": quantile([ms for ms, s in hits if s == "hit"], 0.95) if any(
                    s == "hit" for _, s in hits) else None}
    finally:
        gw.stop()


def report(f: dict[str, Any]) -> None:
    print(f"Response cache, run of {f['date_utc']} UTC ({f['cores']} cores), provider answering in "
          f"{f['upstream_ms']} ms; statuses seen: {f['statuses']}")
    print("| | p50 | p95 |\n|---|---|---|")
    print(f"| miss (provider called, answer stored), one at a time | {f['miss_p50_ms']:.1f} ms "
          f"| {f['miss_p95_ms']:.1f} ms |")
    print(f"| hit (no provider call), one at a time | {f['hit_p50_ms']:.1f} ms | {f['hit_p95_ms']:.1f} ms |")
    hits, calls = f["closed_hits"], f["closed_provider_calls"]
    print(f"\n| {f['connections']} connections, closed loop | req/s | p50 | p99 | errors |\n|---|---|---|---|---|")
    for name, r in (("every request a hit", hits), ("the same with no-cache (every one a provider call)", calls)):
        print(f"| {name} | {r.get('rps', 0):.0f} | {r.get('p50_ms', 0):.1f} ms | {r.get('p99_ms', 0):.1f} ms | "
              f"{r.get('errors', 0)} |")
    s = f["semantic"]
    print(f"\nSemantic mode (statuses seen: {s['statuses']}), one at a time:\n| | p50 | p95 |\n|---|---|---|")
    print(f"| miss (embedded, looked up, provider called, stored) | {s['miss_p50_ms']:.1f} ms "
          f"| {s['miss_p95_ms']:.1f} ms |")
    if s["hit_p50_ms"] is not None:
        print(f"| reworded question, a semantic hit ({s['hits']} of {s['asked']}) | {s['hit_p50_ms']:.1f} ms "
              f"| {s['hit_p95_ms']:.1f} ms |")
    print(f"added to a miss by the semantic lookup: {s['miss_p50_ms'] - f['miss_p50_ms']:+.1f} ms p50 "
          "(against the exact gateway's miss above)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--upstream-ms", type=int, default=150)
    parser.add_argument("--json", action="store_true")
    opts = parser.parse_args(argv)
    figures = measure(opts)
    if opts.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
