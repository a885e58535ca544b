"""Batch drill: a large batch through the whole chain, once beside interactive load and once while every
kind of gateway process is SIGKILLed; then count what the batch's caller and an analyst would see.

    python bench/batch_drill.py [--lines 10000] [--rate 100] [--kill-every 4]
                                [--kinds stages,lane,batch,sink,ingress,nats-server] [--latency-ms 20] [--json]

Starts ``gateway up`` (the test config of ``infra/operator/launcher.py``: free ports, a temporary data dir,
the bundled mock provider, answering each call after ``--latency-ms``). Three phases:

1. **interactive alone**: ``--rate`` chat requests a second, open loop (``bench/loadgen.py`` in its own
   process: latency from the schedule), for ``--interactive-s`` seconds: p50/p99.
2. **interactive beside a batch**: the same load while a ``--lines`` batch runs: p50/p99 again, and the
   batch's time to finish.
3. **the batch under kills**: another ``--lines`` batch; once it runs, one process of each ``--kinds`` is
   SIGKILLed, ``--kill-every`` seconds apart (``gateway up`` restarts each).

For each batch: every ``custom_id`` must be in the output or error file exactly once, one ``requests``
row per line (``gateway sql``: rows, distinct request ids and custom ids for the ``batch_id``), and the
provider calls per line are counted from the mock's request log (extra calls = a line that ran twice,
when a kill cut it after its provider call). Exit status 0 only when nothing was lost or doubled and the
rows match the lines. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.nats_server import free_port  # noqa: E402
from infra.operator.launcher import DEMO_KEY, RunningGateway, gateway_config, start_gateway  # noqa: E402

LINE_RE = re.compile(r"bline([a-j]+)x([a-z]+)z")
"""A line's marker in what the provider sees: its number in letters (digits could be taken for PII and
redacted) and its batch's tag."""


def letters(number: int) -> str:
    return "".join("abcdefghij"[int(d)] for d in str(number))


def number(text: str) -> int:
    return int("".join(str("abcdefghij".index(c)) for c in text))
TERMINAL = {"completed", "failed", "expired", "cancelled"}


@dataclass
class BatchOutcome:
    label: str
    lines: int
    status: str = ""
    seconds: float = 0.0
    ok: int = 0
    failed: int = 0
    answered_once: int = 0
    missing: int = 0
    doubled: int = 0
    rows: int = 0
    row_ids: int = 0
    row_custom_ids: int = 0
    provider_calls: int = 0
    lines_called_twice: int = 0
    kills: list[str] = field(default_factory=list)

    @property
    def sound(self) -> bool:
        return (self.status == "completed" and self.missing == 0 and self.doubled == 0
                and self.answered_once == self.lines and self.rows == self.lines == self.row_ids)


class Api:
    """The OpenAI Files and Batch APIs over HTTP, retried through restarts (ingress or the broker killed)."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, headers={"authorization": f"Bearer {DEMO_KEY}"}, timeout=60)

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for _ in range(120):
            try:
                answer = self.http.request(method, path, **kwargs)
            except httpx.HTTPError:
                time.sleep(0.5)
                continue
            if answer.status_code in (502, 503, 504):
                time.sleep(0.5)
                continue
            return answer
        raise RuntimeError(f"{method} {path}: the gateway did not come back")

    def submit(self, data: bytes, tag: str) -> str:
        upload = self.call("POST", "/v1/files", files={"file": (f"{tag}.jsonl", data)}, data={"purpose": "batch"})
        upload.raise_for_status()
        created = self.call("POST", "/v1/batches", json={"input_file_id": upload.json()["id"],
                                                         "endpoint": "/v1/chat/completions",
                                                         "completion_window": "24h"})
        created.raise_for_status()
        return str(created.json()["id"])

    def wait(self, batch_id: str, timeout_s: float, on_progress: Any = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        batch: dict[str, Any] = {}
        while time.monotonic() < deadline:
            batch = self.call("GET", f"/v1/batches/{batch_id}").json()
            if on_progress is not None:
                on_progress(batch)
            if batch.get("status") in TERMINAL:
                return batch
            time.sleep(0.5)
        return batch

    def content(self, file_id: str | None) -> list[dict[str, Any]]:
        if not file_id:
            return []
        data = self.call("GET", f"/v1/files/{file_id}/content").content
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def batch_file(lines: int, tag: str, latency_ms: int) -> bytes:
    def line(i: int) -> bytes:
        text = f"[[mock latency_ms={latency_ms}]] bline{letters(i)}x{tag}z summarise this line"
        return orjson.dumps({"custom_id": f"{tag}-{i}", "method": "POST", "url": "/v1/chat/completions",
                             "body": {"model": "gpt-4o-mini", "max_tokens": 16,
                                      "messages": [{"role": "user", "content": text}]}}) + b"\n"
    return b"".join(line(i) for i in range(lines))


class MockCalls:
    """Provider calls per batch line, read from the mock's request log as it goes (the log is bounded)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seq = 0
        self.calls: Counter[tuple[str, int]] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        with httpx.Client(timeout=10) as http:
            entries = http.get(f"{self.url}/_mock/requests").json()
            self.seq = int(entries[-1]["seq"]) if entries else 0
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._poll()

    def _poll(self) -> None:
        try:
            with httpx.Client(timeout=10) as http:
                entries = http.get(f"{self.url}/_mock/requests", params={"after": self.seq}).json()
        except (httpx.HTTPError, ValueError):
            return
        for entry in entries:
            self.seq = max(self.seq, int(entry["seq"]))
            body = entry.get("body")
            text = body if isinstance(body, str) else orjson.dumps(body).decode()
            for line, tag in set(LINE_RE.findall(text)):
                self.calls[(tag, number(line))] += 1


def interactive(gw: RunningGateway, rate: float, seconds: float, latency_ms: int) -> subprocess.Popen[bytes]:
    body = orjson.dumps({"model": "gpt-4o-mini", "max_tokens": 16, "messages": [
        {"role": "user", "content": f"[[mock latency_ms={latency_ms}]] an interactive question"}]}).decode()
    return subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", "--url", f"{gw.base_url}/v1/chat/completions", "--mode", "open",
         "--rate", str(rate), "--connections", "64", "--duration", str(seconds), "--warmup", "2",
         "--body", body, "--header", f"Authorization: Bearer {DEMO_KEY}", "--header", "Content-Type: application/json"],
        cwd=ROOT, stdout=subprocess.PIPE)


def loadgen_result(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, _ = process.communicate(timeout=600)
    return dict(json.loads(out))


def check(api: Api, gw: RunningGateway, mock: MockCalls, batch_id: str, tag: str, lines: int,
          outcome: BatchOutcome) -> None:
    batch = api.wait(batch_id, 900)
    outcome.status = str(batch.get("status"))
    answered = api.content(batch.get("output_file_id")) + api.content(batch.get("error_file_id"))
    counts = Counter(str(line["custom_id"]) for line in answered)
    expected = {f"{tag}-{i}" for i in range(lines)}
    outcome.answered_once = sum(1 for cid in expected if counts[cid] == 1)
    outcome.missing = sum(1 for cid in expected if counts[cid] == 0)
    outcome.doubled = sum(1 for cid in expected if counts[cid] > 1)
    outcome.ok = sum(1 for line in answered if (line.get("response") or {}).get("status_code") == 200)
    outcome.failed = len(answered) - outcome.ok
    query = (f"SELECT count() AS rows, uniqExact(request_id) AS ids, uniqExact(custom_id) AS cids FROM requests "
             f"FINAL WHERE batch_id = '{batch_id}'")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            row = gw.sql(query)[0]
        except Exception:  # noqa: BLE001 - the sink restarts: ask again
            time.sleep(1.0)
            continue
        outcome.rows, outcome.row_ids, outcome.row_custom_ids = int(row["rows"]), int(row["ids"]), int(row["cids"])
        if outcome.rows >= lines:
            break
        time.sleep(1.0)
    time.sleep(1.0)
    mine = {line: n for (t, line), n in mock.calls.items() if t == tag}
    outcome.provider_calls = sum(mine.values())
    outcome.lines_called_twice = sum(1 for n in mine.values() if n > 1)


def kill_one(gw: RunningGateway, kind: str) -> str:
    pids = gw.pids()
    name = next((n for n in sorted(pids) if n == kind or n.startswith(f"{kind}")), None)
    if name is None:
        return f"{kind}: not running"
    os.kill(pids[name], signal.SIGKILL)
    return f"{name} (pid {pids[name]})"


def run(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    root = Path(tempfile.mkdtemp(prefix="batch-drill-"))
    mock_port = free_port()
    config = gateway_config(mock_port)
    gw = start_gateway(root, config, extra_env={"GATEWAY_LOG_LEVEL": "WARNING"})
    api = Api(gw.base_url)
    mock = MockCalls(gw.mock_url)
    mock.start()
    report: dict[str, Any] = {"lines": args.lines, "rate": args.rate, "latency_ms": args.latency_ms}
    try:
        print(f"batch drill: gateway up under {root}", file=sys.stderr)
        alone = loadgen_result(interactive(gw, args.rate, args.interactive_s, args.latency_ms))
        report["interactive_alone"] = {k: alone[k] for k in ("ok", "errors", "p50_ms", "p99_ms")}
        print(f"  interactive alone: p50 {alone['p50_ms']} ms, p99 {alone['p99_ms']} ms", file=sys.stderr)

        side = BatchOutcome("beside interactive load", args.lines)
        load = interactive(gw, args.rate, args.interactive_s, args.latency_ms)
        time.sleep(1.0)
        started = time.monotonic()
        batch_id = api.submit(batch_file(args.lines, "side", args.latency_ms), "side")
        during = loadgen_result(load)
        check(api, gw, mock, batch_id, "side", args.lines, side)
        side.seconds = round(time.monotonic() - started, 1)
        report["interactive_beside_batch"] = {k: during[k] for k in ("ok", "errors", "p50_ms", "p99_ms")}
        print(f"  interactive beside the batch: p50 {during['p50_ms']} ms, p99 {during['p99_ms']} ms; batch "
              f"{side.status} in {side.seconds}s", file=sys.stderr)

        if not args.kinds:
            mock.stop()
            report["batches"] = [asdict(side) | {"sound": side.sound}]
            return report, side.sound
        killed = BatchOutcome("under kills", args.lines)
        started = time.monotonic()
        batch_id = api.submit(batch_file(args.lines, "kill", args.latency_ms), "kill")
        while api.call("GET", f"/v1/batches/{batch_id}").json().get("status") == "validating":
            time.sleep(0.2)
        for kind in args.kinds:
            time.sleep(args.kill_every)
            status = api.call("GET", f"/v1/batches/{batch_id}").json()
            killed.kills.append(f"{kill_one(gw, kind)} at {time.monotonic() - started:.1f}s, "
                                f"{status['request_counts']['completed'] + status['request_counts']['failed']} done")
            print(f"  killed {killed.kills[-1]}", file=sys.stderr)
        check(api, gw, mock, batch_id, "kill", args.lines, killed)
        killed.seconds = round(time.monotonic() - started, 1)
        mock.stop()
        report["batches"] = [asdict(side) | {"sound": side.sound}, asdict(killed) | {"sound": killed.sound}]
        return report, side.sound and killed.sound
    finally:
        gw.stop()


def render(report: dict[str, Any]) -> str:
    alone, beside = report["interactive_alone"], report["interactive_beside_batch"]
    rise = (beside["p99_ms"] / alone["p99_ms"] - 1) * 100 if alone["p99_ms"] else float("nan")
    out = [f"interactive {report['rate']:.0f} req/s (provider {report['latency_ms']} ms): "
           f"alone p50 {alone['p50_ms']:.1f} ms p99 {alone['p99_ms']:.1f} ms; beside a {report['lines']}-line batch "
           f"p50 {beside['p50_ms']:.1f} ms p99 {beside['p99_ms']:.1f} ms ({rise:+.0f} % p99), "
           f"errors {alone['errors']}/{beside['errors']}", "",
           "| batch | status | time | lines/s | answered once | missing | doubled | rows (ids) | provider calls "
           "| lines called twice |", "|---|---|---|---|---|---|---|---|---|---|"]
    for b in report["batches"]:
        rate = b["lines"] / b["seconds"] if b["seconds"] else 0
        out.append(f"| {b['label']} | {b['status']} | {b['seconds']} s | {rate:.0f} | {b['answered_once']} "
                   f"| {b['missing']} | {b['doubled']} | {b['rows']} ({b['row_ids']}) | {b['provider_calls']} "
                   f"| {b['lines_called_twice']} |")
    if len(report["batches"]) > 1:
        out += ["", "kills: " + "; ".join(report["batches"][1]["kills"])]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/batch_drill.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--interactive-s", type=float, default=20.0)
    p.add_argument("--kill-every", type=float, default=4.0)
    p.add_argument("--kinds", type=lambda s: [k for k in s.split(",") if k],
                   default=["stages", "lane", "batch", "sink", "ingress", "nats-server"])
    p.add_argument("--latency-ms", type=int, default=20)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report, sound = run(args)
    print(json.dumps(report, indent=1) if args.json else render(report))
    print("batch drill: " + ("PASS" if sound else "FAIL: a line was lost, doubled or not recorded once"),
          file=sys.stderr)
    return 0 if sound else 1


if __name__ == "__main__":
    raise SystemExit(main())
