"""Benchmark the whole gateway (every stage on) against the bundled mock provider.

    python bench/gateway_bench.py [--duration 10] [--connections 64] [--rate 100] [--replicas STAGE=N ...] [--json]

Starts ``gateway up`` with the test config (free ports, a temporary data dir), then measures with
``bench.loadgen`` (its own process) against the SAME mock provider:

a. the mock provider called directly: max req/s at ``--connections``; p50/p99 at ``--rate`` req/s;
b. the gateway: the same two figures;
c. the gateway with a prompt containing PII (an email and a phone number) at ``--rate`` req/s.

It prints a table, the gateway's added latency, and the CPU cost per request of every gateway process
(utime+stime from ``/proc/<pid>/stat`` around the closed-loop run). The gateway is stopped at the end
whatever happens. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.operator.launcher import DEMO_KEY, RunningGateway, mock_requests, start_gateway  # noqa: E402

MODEL = "gpt-4o-mini"
# ~200 characters, no PII.
PROMPT = ("Summarise the main trade-offs between event-driven and request-driven designs for a small team "
          "building an internal service, in three short bullet points of one sentence each, plain English.")
# About the same length, with an email address and a phone number for the redaction stage to find.
PII_PROMPT = ("Please draft a short, polite reply to the customer who wrote from jane.doe@example.com and asked "
              "us to call her back on +1 415-555-0132 about the delayed order; keep it to three sentences.")
TARGET_RPS = 600.0
TARGET_P50_OVERHEAD_MS = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROFILE_ORDER = ["supervisor", "ingress", "redaction", "policy", "routing", "provider", "output_filter", "sink",
                 "nats-server", "mock_provider"]


def chat_body(prompt: str) -> bytes:
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": prompt}]}).encode()


@dataclass(frozen=True)
class Options:
    duration: float
    warmup: float
    connections: int
    rate: float
    replicas: list[str]
    as_json: bool
    rounds: int = 3


def run_loadgen(url: str, body: bytes, mode: str, opts: Options, tmp: Path) -> tuple[dict[str, Any], float]:
    """Run ``bench.loadgen`` in its own process; return its JSON and its CPU seconds."""
    body_file = tmp / "body.json"
    body_file.write_bytes(body)
    grace = 10.0
    args = [sys.executable, "-m", "bench.loadgen", "--url", url, "--mode", mode,
            "--connections", str(opts.connections), "--rate", str(opts.rate),
            "--duration", str(opts.duration), "--warmup", str(opts.warmup), "--grace", str(grace),
            "--body-file", str(body_file),
            "--header", "Content-Type: application/json", "--header", f"Authorization: Bearer {DEMO_KEY}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=opts.warmup + opts.duration + grace + 30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"loadgen did not finish: {' '.join(args)}") from None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result: dict[str, Any] = json.loads(out)
    return result, cpu


def cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # fields from the 3rd on; utime, stime are the 14th, 15th
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def system_busy_seconds() -> float:
    """User+nice+system CPU seconds of all cores since boot (first line of /proc/stat; irq/softirq left out,
    as loopback traffic is processed there without being charged to any process)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:4]]
    return sum(fields) / CLK_TCK


def gateway_processes(gw: RunningGateway) -> dict[str, int]:
    procs = {"supervisor": gw.process.pid}
    procs.update(gw.pids())
    return procs


def cpu_snapshot(procs: dict[str, int]) -> dict[str, float | None]:
    return {name: cpu_seconds(pid) for name, pid in procs.items()}


def settle(procs: dict[str, int], max_wait_s: float = 8.0) -> float:
    """Wait until the gateway is idle again (the sink may still be writing a backlog); return seconds waited."""
    start = time.monotonic()
    last = sum(v or 0.0 for v in cpu_snapshot(procs).values())
    while time.monotonic() - start < max_wait_s:
        time.sleep(0.5)
        now = sum(v or 0.0 for v in cpu_snapshot(procs).values())
        if now - last < 0.03:  # under 6% of one core over the last half second
            break
        last = now
    return time.monotonic() - start


def check_sample(name: str, result: dict[str, Any], notes: list[str]) -> None:
    sample = result.get("sample_body") or ""
    if "Echo:" not in sample:
        notes.append(f"{name}: first 2xx body does not contain 'Echo:': {sample[:300]!r}")
    if result["errors"]:
        notes.append(f"{name}: {result['errors']} errors {result['errors_by_status']}; samples: "
                     f"{json.dumps(result['error_samples'])[:600]}")


def measure(opts: Options) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    gw: RunningGateway | None = None
    notes: list[str] = []
    try:
        t0 = time.monotonic()
        gw = start_gateway(tmp / "gw", replicas=opts.replicas)
        startup_s = time.monotonic() - t0
        direct_url = f"{gw.mock_url}/v1/chat/completions"
        gateway_url = f"{gw.base_url}/v1/chat/completions"
        body, pii_body = chat_body(PROMPT), chat_body(PII_PROMPT)
        first_ms, next_ms = first_requests(gateway_url, pii_body)
        runs: dict[str, dict[str, Any]] = {}

        def run(name: str, url: str, payload: bytes, mode: str) -> dict[str, Any]:
            print(f"  running {name} ...", file=sys.stderr, flush=True)
            result, loadgen_cpu = run_loadgen(url, payload, mode, opts, tmp)
            result["loadgen_cpu_ms_per_req"] = _per_req(loadgen_cpu, result["total_done"])
            check_sample(name, result, notes)
            runs[name] = result
            return result

        run("direct_closed", direct_url, body, "closed")
        run("direct_open", direct_url, body, "open")

        procs = gateway_processes(gw)
        before, busy_before = cpu_snapshot(procs), system_busy_seconds()
        result = run("gateway_closed", gateway_url, body, "closed")
        settled_s = settle(procs)
        after, busy_after = cpu_snapshot(procs), system_busy_seconds()
        if gateway_processes(gw) != procs:
            notes.append("a gateway process was restarted during the closed-loop run: CPU figures are incomplete")
        served = int(result["total_done"])
        per_process: dict[str, float | None] = {}
        for name in procs:
            b, a = before.get(name), after.get(name)
            per_process[name] = _per_req(a - b, served) if a is not None and b is not None else None
        gateway_cpu = sum(v for k, v in per_process.items() if v is not None and k != "mock_provider")
        ours_s = sum(a - b for n, b in before.items() if b is not None and (a := after.get(n)) is not None)
        ours_s += result["loadgen_cpu_ms_per_req"] * served / 1000.0
        foreign_s = max(0.0, (busy_after - busy_before) - ours_s)
        window_s = opts.warmup + opts.duration + settled_s
        if foreign_s > 0.10 * window_s:  # below that: accounting noise, kernel threads
            notes.append(f"other processes on this machine used {foreign_s:.1f} CPU-s during the {window_s:.0f} s "
                         f"closed-loop run ({100 * foreign_s / window_s:.0f}% of one core): figures are perturbed")

        # Latency at a fixed rate: this machine's run-to-run noise is about ±1.5 ms, so interleave
        # direct and gateway runs and keep the round with the median added latency.
        rounds: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for i in range(1, opts.rounds + 1):
            rounds.append((run(f"direct_open_{i}", direct_url, body, "open"),
                           run(f"gateway_open_{i}", gateway_url, body, "open")))
            del runs[f"direct_open_{i}"], runs[f"gateway_open_{i}"]
        added = sorted(rounds, key=lambda r: r[1]["p50_ms"] - r[0]["p50_ms"])
        runs["direct_open"], runs["gateway_open"] = added[len(added) // 2]
        run("gateway_pii_open", gateway_url, pii_body, "open")
        seen = json.dumps(mock_requests(gw)[-1:])
        redacted = "jane.doe@example.com" not in seen and "555-0132" not in seen
        if not redacted:
            notes.append("the PII prompt reached the mock provider unredacted")

        d_open, g_open = runs["direct_open"], runs["gateway_open"]
        figures: dict[str, Any] = {
            "duration_s": opts.duration,
            "warmup_s": opts.warmup,
            "connections": opts.connections,
            "rate": opts.rate,
            "replicas": opts.replicas,
            "cores": os.cpu_count(),
            "gateway_startup_s": round(startup_s, 1),
            "first_request_ms": first_ms,
            "next_requests_ms": next_ms,
            "runs": {k: {f: v[f] for f in ("requests", "errors", "errors_by_status", "rps", "p50_ms", "p90_ms",
                                           "p99_ms", "max_ms", "loadgen_cpu_ms_per_req")}
                     for k, v in runs.items()},
            "overhead_p50_ms": round(g_open["p50_ms"] - d_open["p50_ms"], 3),
            "overhead_p50_ms_rounds": [round(g["p50_ms"] - d["p50_ms"], 3) for d, g in rounds],
            "overhead_p99_ms": round(g_open["p99_ms"] - d_open["p99_ms"], 3),
            "pii_extra_p50_ms": round(runs["gateway_pii_open"]["p50_ms"] - g_open["p50_ms"], 3),
            "cpu_ms_per_req": round(gateway_cpu, 3),
            "cpu_ms_per_req_incl_mock": round(sum(v for v in per_process.values() if v is not None), 3),
            "cpu_requests_counted": served,
            "cpu_settle_s": round(settled_s, 1),
            "foreign_cpu_s": round(foreign_s, 2),
            "cpu_ms_per_req_by_process": per_process,
            "target": {"rps": TARGET_RPS, "p50_overhead_ms": TARGET_P50_OVERHEAD_MS},
            "pii_redacted_upstream": redacted,
            "notes": notes,
        }
        figures["meets_target"] = (runs["gateway_closed"]["rps"] >= TARGET_RPS and runs["gateway_closed"]["errors"] == 0
                                   and figures["overhead_p50_ms"] <= TARGET_P50_OVERHEAD_MS)
        return figures
    finally:
        if gw is not None:
            gw.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _per_req(cpu_s: float, requests: int) -> float:
    return round(cpu_s * 1000.0 / requests, 3) if requests else math.nan


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def first_requests(url: str, payload: bytes, n: int = 10) -> tuple[float, float]:
    """Ready means ready: the first request after "gateway ready" (a prompt with PII, so the scanners
    run) against the median of the next ``n``, in ms."""
    def one() -> float:
        started = time.perf_counter()
        response = httpx.post(url, content=payload, timeout=60, headers={
            "authorization": f"Bearer {DEMO_KEY}", "content-type": "application/json"})
        response.raise_for_status()
        return (time.perf_counter() - started) * 1000
    first = one()
    rest = sorted(one() for _ in range(n))
    return round(first, 2), round(rest[n // 2], 2)


def report(f: dict[str, Any]) -> None:
    runs = f["runs"]
    conn, rate = f["connections"], f["rate"]
    print(f"\nGateway benchmark: {f['cores']} cores, {f['duration_s']:g} s per run (+{f['warmup_s']:g} s warm-up), "
          f"replicas {f['replicas'] or 'default'}; gateway started in {f['gateway_startup_s']} s; first request "
          f"after ready {f['first_request_ms']} ms, the next ones {f['next_requests_ms']} ms (median)\n")
    header = f"{'run':<34} {'requests':>9} {'errors':>7} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} " \
             f"{'max ms':>8} {'loadgen CPU ms/req':>19}"
    print(header)
    print("-" * len(header))
    labels = {
        "direct_closed": f"mock direct, {conn} conn (max)",
        "direct_open": f"mock direct, {rate:g} req/s",
        "gateway_closed": f"gateway, {conn} conn (max)",
        "gateway_open": f"gateway, {rate:g} req/s",
        "gateway_pii_open": f"gateway + PII prompt, {rate:g} req/s",
    }
    for key, label in labels.items():
        r = runs[key]
        print(f"{label:<34} {r['requests']:>9} {r['errors']:>7} {_fmt(r['rps'], 1):>9} {_fmt(r['p50_ms']):>8} "
              f"{_fmt(r['p90_ms']):>8} {_fmt(r['p99_ms']):>8} {_fmt(r['max_ms']):>8} "
              f"{_fmt(r['loadgen_cpu_ms_per_req'], 3):>19}")
    g = runs["gateway_closed"]
    print(f"\nGateway max throughput: {_fmt(g['rps'], 1)} req/s at {conn} connections   (target >= {TARGET_RPS:g})")
    print(f"Added latency at {rate:g} req/s: p50 {_fmt(f['overhead_p50_ms'])} ms (target <= "
          f"{TARGET_P50_OVERHEAD_MS:g}), p99 {_fmt(f['overhead_p99_ms'])} ms; "
          f"PII prompt adds p50 {_fmt(f['pii_extra_p50_ms'])} ms more")
    if len(f["overhead_p50_ms_rounds"]) > 1:
        print(f"  added p50 per round: {', '.join(_fmt(v) for v in f['overhead_p50_ms_rounds'])} ms (median shown)")
    print(f"Target met: {'yes' if f['meets_target'] else 'NO'}")
    print(f"\nCPU per request (closed-loop run, {f['cpu_requests_counted']} requests incl. warm-up, "
          f"settled {f['cpu_settle_s']} s after): gateway {_fmt(f['cpu_ms_per_req'], 3)} ms "
          f"(+ mock provider = {_fmt(f['cpu_ms_per_req_incl_mock'], 3)} ms); other processes used "
          f"{f['foreign_cpu_s']} CPU-s meanwhile")
    by_proc: dict[str, float | None] = f["cpu_ms_per_req_by_process"]
    order = sorted(by_proc, key=lambda n: (PROFILE_ORDER.index(n.split(".")[0])
                                          if n.split(".")[0] in PROFILE_ORDER else 99, n))
    total = f["cpu_ms_per_req_incl_mock"] or 1.0
    for name in order:
        v = by_proc[name]
        share = f"{100.0 * v / total:5.1f}%" if v is not None else "    -"
        print(f"  {name:<16} {_fmt(v, 3):>8} ms/req  {share}")
    if f["notes"]:
        print("\nNotes:")
        for note in f["notes"]:
            print(f"  - {note}")
    else:
        print("\nAll responses checked: first bodies contain 'Echo:', 0 errors, PII redacted before the provider.")


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description="Benchmark the whole gateway against the bundled mock provider.")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per run, not counted (default 2)")
    p.add_argument("--connections", type=int, default=64, help="connections for the max-throughput runs")
    p.add_argument("--rate", type=float, default=100.0, help="arrival rate for the latency runs (req/s)")
    p.add_argument("--replicas", action="append", default=[], metavar="STAGE=N", help="passed to `gateway up`")
    p.add_argument("--rounds", type=int, default=3, help="interleaved direct/gateway latency rounds (median kept)")
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    a = p.parse_args(argv)
    if a.duration <= 0 or a.duration > 60 or a.warmup < 0 or a.warmup > 30:
        p.error("--duration must be in (0, 60] and --warmup in [0, 30]")
    if a.rounds < 1:
        p.error("--rounds must be >= 1")
    return Options(a.duration, a.warmup, a.connections, a.rate, list(a.replicas), a.json, a.rounds)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)  # so the gateway is stopped by measure()'s finally
    figures = measure(opts)
    report(figures)
    if opts.as_json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
