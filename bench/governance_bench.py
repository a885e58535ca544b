"""What budgets and rate limits cost in throughput: the same gateway, the bench key with and without a
budget + RPM + TPM, alternating runs in one sitting.

    python bench/governance_bench.py [--rounds 3] [--duration 10] [--warmup 2] [--connections 64]

Starts ``gateway up`` (the default layout, the launcher's test config), then for each round runs the
closed-loop load of ``bench/gateway_bench.py`` (``bench.loadgen``, the same body and key) once with
the key unlimited and once with generous limits (nothing is refused, but every request reserves on
the shared ledger and is settled from its record), the order alternating between rounds. The limits
are switched by rewriting the config file (hot reload); a run starts only once answers show the
switch (``x-ratelimit-*`` headers present or absent). Prints req/s and p50 per run and the ratio of
the medians. Compare only within one run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gateway_bench import PROMPT, Options, chat_body, run_loadgen  # noqa: E402
from infra.operator.launcher import DEMO_KEY, RunningGateway, start_gateway  # noqa: E402

LIMITS = {"budget_usd": "1000000", "budget_period": "day", "rpm": 10_000_000, "tpm": 10_000_000_000}


def switch(gw: RunningGateway, base: dict[str, Any], limited: bool) -> None:
    config = json.loads(json.dumps(base))
    demo = next(k for k in config["keys"] if k["id"] == "demo")
    if limited:
        demo["limits"] = LIMITS
    (gw.root / "gateway.yaml").write_text(yaml.safe_dump(config))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = httpx.post(f"{gw.base_url}/v1/chat/completions", content=chat_body(PROMPT),
                            headers={"Authorization": f"Bearer {DEMO_KEY}", "Content-Type": "application/json"},
                            timeout=30)
        if answer.status_code == 200 and ("x-ratelimit-limit-requests" in answer.headers) == limited:
            return
        time.sleep(0.5)
    raise RuntimeError("the config switch did not take effect within 60 s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--replicas", action="append", default=[])
    args = p.parse_args(argv)
    opts = Options(duration=args.duration, warmup=args.warmup, connections=args.connections, rate=100.0,
                   replicas=args.replicas, as_json=False)
    results: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="gw-gov-bench-") as tmp:
        gw = start_gateway(Path(tmp) / "gw", replicas=args.replicas)
        try:
            base = yaml.safe_load((gw.root / "gateway.yaml").read_text())
            url = f"{gw.base_url}/v1/chat/completions"
            for i in range(args.rounds):
                for mode in (("off", "on") if i % 2 == 0 else ("on", "off")):
                    switch(gw, base, mode == "on")
                    result, _ = run_loadgen(url, chat_body(PROMPT), "closed", opts, Path(tmp))
                    results[mode].append(result)
                    print(f"round {i + 1} limits {mode:>3}: {result['rps']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, "
                          f"p99 {result['p99_ms']:.1f} ms, errors {result['errors']}", flush=True)
        finally:
            gw.stop()
    off = statistics.median(r["rps"] for r in results["off"])
    on = statistics.median(r["rps"] for r in results["on"])
    print(f"median req/s without limits {off:.0f}, with budget+rpm+tpm {on:.0f}: "
          f"{100 * (on - off) / off:+.1f} %")
    errors = sum(r["errors"] for rs in results.values() for r in rs)
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
