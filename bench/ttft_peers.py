"""Time to first token and chunk cadence of a streamed answer: direct, ours and the peers, in one run.

    python bench/ttft_peers.py [--targets "direct ours portkey-hono2 litellm-w1"] [--requests 30]
                               [--concurrency 1] [--warmup 3] [--out FILE] [--peers-root /tmp/peers]

One upstream for everyone: the project's mock provider (``python -m infra.doubles.mock_provider``) on a
free port, streaming a fixed ~240-character English reply (prose, no PII) at two cadences set per request
by a ``[[mock ...]]`` directive in the last user message: 4 characters every 50 ms (80 characters/s) and
every 10 ms (400 characters/s). The mock writes the role chunk at once and waits ``chunk_delay_ms``
before every later event, so the first content chunk leaves it one delay after the response headers:
"direct" TTFT is that delay plus the loopback round trip, the floor every target is measured against.

Targets run one after another, each started, made ready (a non-streaming request answered 200), measured
at both cadences and stopped before the next: ``direct`` (the mock itself), ``ours`` (``gateway up``
with the shipped ``config/gateway.yaml``, providers pointed at the mock as the shared peers harness
does; every stage on), ``portkey-hono2`` and ``litellm-w1`` (installs under ``--peers-root``; a
missing install is skipped). Per request: TTFT (sent -> first chunk with non-empty
``choices[0].delta.content``), total time, content chunks, and the streamed text, which must equal the
reply exactly. Prints a markdown table and writes every figure to ``--out`` (JSON). Only ratios inside
one run count: absolute figures on a shared machine move between runs. Only 127.0.0.1 is contacted;
every process started here runs in its own session and is stopped (its process group) at the end
whatever happens. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import glob
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.nats_server import free_port  # noqa: E402

# The answer a chat user sees: English prose, no PII, ~240 characters.
REPLY = ("A rainbow appears when sunlight enters falling raindrops, bends as it crosses into the water, "
         "reflects off the back of each drop and bends again on the way out. Each colour bends by a "
         "different amount, so white light spreads into a band.")
REPLIES = (REPLY,
           "Rainbows need the sun behind you and rain in front of you. Sunlight entering each raindrop bends, "
           "reflects off the far side and bends again as it leaves, and because every colour bends by a slightly "
           "different angle, the light fans out into an arc.",
           "Sure. After a shower the air is still full of drops while the sun comes out again, so sunlight is "
           "refracted, reflected inside each drop and refracted once more, splitting white light into its colours "
           "at slightly different angles.",
           "It is sunlight meeting raindrops: each drop acts like a tiny prism that bends the light, bounces it off "
           "its back surface and bends it again, and since red and violet bend differently the colours separate.")
"""Rotated per request, so time to first token does not hang on where one reply's first chunk ends."""
QUESTION = "Why do rainbows appear after rain? Please answer in two sentences."
MODEL = "mock-gpt"
BENCH_KEY = "sk-bench"
DEFAULT_TARGETS = ("direct", "ours", "portkey-hono2", "litellm-w1")
KNOWN_TARGETS = ("direct", "ours", "ours-words", "portkey-hono2", "litellm-w1")
GOAL_ADDED_TTFT_MS = 30.0
GOAL_CHUNK_RATIO = 0.10
READY_TIMEOUT_S = 180.0
STOP_GRACE_S = 15.0
REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Cadence:
    name: str
    chunk_chars: int
    chunk_delay_ms: int

    @property
    def chars_per_s(self) -> float:
        return self.chunk_chars * 1000.0 / self.chunk_delay_ms

    def directive(self, reply: str) -> str:
        b64 = base64.b64encode(reply.encode()).decode()
        return f"[[mock chunk_chars={self.chunk_chars} chunk_delay_ms={self.chunk_delay_ms} reply_b64={b64}]]"


CADENCES = (Cadence("80 chars/s", 4, 50), Cadence("400 chars/s", 4, 10))


# ---------------------------------------------------------------- pure parts: SSE, statistics, table

class SseParser:
    """Incremental SSE parser: feed it bytes as they arrive, get back the ``data:`` payloads completed."""

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[str]:
        self._buf += chunk
        events: list[str] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                return events
            line, self._buf = self._buf[:nl].rstrip(b"\r"), self._buf[nl + 1:]
            if not line:  # a blank line ends the event
                if self._data:
                    events.append(b"\n".join(self._data).decode())
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            # comments (":...") and other fields (event:, id:, retry:) are ignored

    def close(self) -> list[str]:
        """Payloads of an event the stream ended without a blank line after."""
        events = self.feed(b"\n\n") if self._buf or self._data else []
        self._buf = b""
        return events


def delta_content(payload: str) -> str:
    """``choices[0].delta.content`` of a chunk payload, "" when absent, null or not a chunk."""
    if payload == "[DONE]":
        return ""
    try:
        obj = json.loads(payload)
    except ValueError:
        return ""
    if not isinstance(obj, dict):
        return ""
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


@dataclass
class StreamResult:
    """One streamed request. Times in ms from the moment the request was sent."""
    ttft_ms: float | None = None
    total_ms: float | None = None
    chunk_ms: list[float] = field(default_factory=list)  # arrival of each content chunk
    text: str = ""
    done: bool = False
    error: str | None = None
    expected: str = ""  # the reply this request asked the mock for

    @property
    def chunks(self) -> int:
        return len(self.chunk_ms)


class StreamRecorder:
    """Turns the byte stream of one answer into a :class:`StreamResult` (clock passed in: testable)."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.parser = SseParser()
        self.result = StreamResult()
        self._parts: list[str] = []

    def feed(self, chunk: bytes, now: float) -> None:
        self._events(self.parser.feed(chunk), now)

    def finish(self, now: float) -> StreamResult:
        self._events(self.parser.close(), now)
        self.result.total_ms = (now - self.started) * 1000.0
        self.result.text = "".join(self._parts)
        return self.result

    def _events(self, payloads: list[str], now: float) -> None:
        for payload in payloads:
            if payload == "[DONE]":
                self.result.done = True
                continue
            content = delta_content(payload)
            if content:
                at = (now - self.started) * 1000.0
                if self.result.ttft_ms is None:
                    self.result.ttft_ms = at
                self.result.chunk_ms.append(at)
                self._parts.append(content)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def gaps_ms(chunk_ms: Sequence[float]) -> list[float]:
    return [b - a for a, b in zip(chunk_ms, chunk_ms[1:], strict=False)]


def summarize(results: Sequence[StreamResult], expected: str | None = None) -> dict[str, Any]:
    """Statistics of one target x cadence. A request counts as ok when it has no error and its text is
    exactly ``expected`` (default: the reply it asked for); TTFT, total and chunk figures are over the ok
    requests."""
    errors = [r for r in results if r.error is not None]
    mismatches = [r for r in results if r.error is None and r.text != (expected or r.expected)]
    ok = [r for r in results if r.error is None and r.text == (expected or r.expected)]
    ttft = [r.ttft_ms for r in ok if r.ttft_ms is not None]
    total = [r.total_ms for r in ok if r.total_ms is not None]
    chunks = [float(r.chunks) for r in ok]
    gaps = [g for r in ok for g in gaps_ms(r.chunk_ms)]
    max_gap = [max(gaps_ms(r.chunk_ms)) for r in ok if r.chunks > 1]
    last = [r.chunk_ms[-1] for r in ok if r.chunk_ms]
    return {
        "requests": len(results),
        "ok": len(ok),
        "errors": len(errors),
        "mismatches": len(mismatches),
        "no_done": sum(1 for r in ok if not r.done),
        "ttft_p50_ms": percentile(ttft, 50),
        "ttft_p95_ms": percentile(ttft, 95),
        "total_p50_ms": percentile(total, 50),
        "last_chunk_p50_ms": percentile(last, 50),  # when the last content chunk arrived: a held-back tail shows
        "chunks_median": percentile(chunks, 50),
        "gap_p50_ms": percentile(gaps, 50),
        "max_gap_p50_ms": percentile(max_gap, 50),
        "error_samples": sorted({r.error for r in errors if r.error})[:5],
        "mismatch_samples": [r.text[:300] for r in mismatches[:3]],
    }


def compare(rows: list[dict[str, Any]]) -> None:
    """Add ``added_ttft_p50_ms`` and ``chunks_ratio`` (vs direct at the same cadence) to every row."""
    direct = {r["cadence"]: r for r in rows if r["target"] == "direct"}
    for row in rows:
        base = direct.get(row["cadence"])
        row["added_ttft_p50_ms"] = row["chunks_ratio"] = None
        if base is None:
            continue
        if row["ttft_p50_ms"] is not None and base["ttft_p50_ms"] is not None:
            row["added_ttft_p50_ms"] = row["ttft_p50_ms"] - base["ttft_p50_ms"]
        if row["chunks_median"] is not None and base["chunks_median"]:
            row["chunks_ratio"] = row["chunks_median"] / base["chunks_median"]


def _ms(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def render_table(rows: list[dict[str, Any]]) -> str:
    head = ("| target | cadence | ok / sent | TTFT p50 ms | TTFT p95 ms | added TTFT p50 ms | total p50 ms "
            "| content chunks (median) | chunks vs direct | chunk gap p50 ms | errors / mismatches |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        chunks = "–" if r["chunks_median"] is None else f"{r['chunks_median']:g}"
        ratio = "–" if r["chunks_ratio"] is None else f"{r['chunks_ratio']:.2f}"
        added = "–" if r["target"] == "direct" else _ms(r["added_ttft_p50_ms"], signed=True)
        lines.append(f"| {r['label']} | {r['cadence']} | {r['ok']} / {r['requests']} | {_ms(r['ttft_p50_ms'])} "
                     f"| {_ms(r['ttft_p95_ms'])} | {added} | {_ms(r['total_p50_ms'])} | {chunks} | {ratio} "
                     f"| {_ms(r['gap_p50_ms'])} | {r['errors']} / {r['mismatches']} |")
    return "\n".join(lines)


def goal_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The issue's goal for ours (and ours-words): added TTFT p50 <= 30 ms, chunk count within 10 % of the
    provider's."""
    out = []
    for r in rows:
        if not r["target"].startswith("ours"):
            continue
        added, ratio = r["added_ttft_p50_ms"], r["chunks_ratio"]
        met = (added is not None and added <= GOAL_ADDED_TTFT_MS and ratio is not None
               and abs(ratio - 1.0) <= GOAL_CHUNK_RATIO and r["errors"] == 0 and r["mismatches"] == 0)
        ratio_s = "–" if ratio is None else f"{ratio:.2f}"
        out.append(f"{r['label']} at {r['cadence']}: added TTFT p50 {_ms(added, signed=True)} ms (goal <= "
                   f"{GOAL_ADDED_TTFT_MS:g}), chunks {ratio_s} x direct (goal 1 ± {GOAL_CHUNK_RATIO:g}), "
                   f"errors/mismatches {r['errors']}/{r['mismatches']}: {'met' if met else 'NOT met'}")
    return out


# ---------------------------------------------------------------- processes

def log(msg: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


class Proc:
    """A process in its own session (its PID is its process group), stopped by that group only."""

    def __init__(self, name: str, cmd: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")  # closed in stop()  # noqa: SIM115
        self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                      env=env, cwd=cwd, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it after a bound; then the same for any descendant that put
        itself in a group of its own (``gateway up`` starts its workers so) and outlived its parent."""
        rest = descendants(self.pid)
        _stop_all(self.name, [self.pid], group=True)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        left = [pid for pid, started in rest.items() if started is not None and _start_time(pid) == started]
        if left:
            log(f"{self.name}: {len(left)} child process(es) outlived it: stopping them by PID")
            _stop_all(self.name, left, group=False)
        self._log.close()

    def tail(self, n: int = 1500) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""


def _stat(pid: int | str) -> list[str] | None:
    """/proc/PID/stat's fields from the 3rd on (state, ppid, ...), or None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (the 22nd field of /proc/PID/stat): with the PID,
    it names one process, not a later one that reuses the PID."""
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def descendants(pid: int) -> dict[int, str | None]:
    """Every descendant of ``pid`` now (from each process's parent in /proc), with its start time."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(entry)) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found: dict[int, str | None] = {}
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found[child] = _start_time(child)
                stack.append(child)
    return found


def _alive(pid: int, group: bool) -> bool:
    try:
        if group:
            os.killpg(pid, 0)
            return True
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"  # a zombie is dead, its parent just has not reaped it


def _stop_all(name: str, pids: list[int], group: bool) -> None:
    """SIGTERM each PID (or process group), wait up to STOP_GRACE_S, SIGKILL what is left."""
    send = os.killpg if group else os.kill
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            send(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(_alive(pid, group) for pid in pids):
        for pid in pids:  # reap our own child, so its group stops counting as alive
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid, group):
            log(f"{name}: {'group ' if group else ''}{pid} still alive after {STOP_GRACE_S:g} s: SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                send(pid, signal.SIGKILL)


@dataclass
class Target:
    name: str
    label: str
    url: str
    headers: dict[str, str]
    proc: Proc | None = None
    version: str = ""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env


def ours_config(mock_port: int, key: str, *, hold_words: bool = False) -> dict[str, Any]:
    """The shipped config adapted as ../shared/bench-peers/ours_config.py does: one bench key, the
    providers pointed at the mock, a model ``mock-gpt``; everything else (redaction, guardrails, output
    filter, retry, breakers) as shipped, but for ``output_filter.hold_words`` when it is true
    (``ours-words``: every unfinished word waits for its end)."""
    cfg: dict[str, Any] = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text())
    cfg["keys"] = [{"id": "bench", "key_sha256": hashlib.sha256(key.encode()).hexdigest(), "tenant": "bench",
                    "models": ["*"]}]
    cfg["mock_provider"] = {"enabled": False, "port": 8090}
    cfg["providers"] = {"up": {"type": "openai", "base_url": f"http://127.0.0.1:{mock_port}/v1"}}
    cfg["models"] = {MODEL: {"targets": [{"provider": "up", "model": MODEL}]}}
    if hold_words:
        cfg.setdefault("output_filter", {})["hold_words"] = True
    return cfg


def litellm_config(mock_port: int, master_key: str) -> dict[str, Any]:
    """Like ../shared/bench-peers/litellm_config.yaml, with the one deployment on our mock."""
    return {
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": f"http://127.0.0.1:{mock_port}/v1", "api_key": "dummy"}}],
        "litellm_settings": {"set_verbose": False, "drop_params": True, "telemetry": False},
        "general_settings": {"master_key": master_key},
    }


def _portkey_version(root: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        pkg = json.loads((root / "node_modules/@portkey-ai/gateway/package.json").read_text())
        hono = json.loads((root / "node_modules/@hono/node-server/package.json").read_text())
        return f"{pkg.get('version', '?')} (@hono/node-server {hono.get('version', '?')})"
    return "?"


def _litellm_version(venv: Path) -> str:
    found = glob.glob(str(venv / "lib/python*/site-packages/litellm-*.dist-info"))
    return Path(found[0]).name.removeprefix("litellm-").removesuffix(".dist-info") if found else "?"


def start_target(name: str, mock_port: int, peers_root: Path, work: Path) -> Target | None:
    """Start a target's process (none for direct); None when its install is missing."""
    direct_url = f"http://127.0.0.1:{mock_port}/v1/chat/completions"
    if name == "direct":
        return Target(name, "direct (mock)", direct_url, {"Authorization": "Bearer dummy"})
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    logs = work / name
    logs.mkdir(parents=True, exist_ok=True)
    if name in ("ours", "ours-words"):
        gateway = ROOT / ".venv" / "bin" / "gateway"
        if not os.access(gateway, os.X_OK):
            log(f"skipping ours: no {gateway} (run `make install`)")
            return None
        cfg_path = logs / "ours_config.yaml"
        cfg_path.write_text(yaml.safe_dump(ours_config(mock_port, BENCH_KEY, hold_words=name == "ours-words"),
                                           sort_keys=False))
        env = _env(GATEWAY_CONFIG=str(cfg_path), GATEWAY_DATA_DIR=str(logs / "data"), GATEWAY_PORT=str(port),
                   GATEWAY_NATS_PORT=str(free_port()), GATEWAY_LOG_LEVEL="WARNING")
        proc = Proc(name, [str(gateway), "up"], logs / "gateway.log", env=env, cwd=ROOT)
        label = "ours" if name == "ours" else "ours, hold_words: true"
        return Target(name, label, url, {"Authorization": f"Bearer {BENCH_KEY}"}, proc)
    if name == "portkey-hono2":
        root = peers_root / "portkey-hono2"
        server = root / "node_modules/@portkey-ai/gateway/build/start-server.js"
        if not server.is_file():
            log(f"skipping portkey-hono2: no install at {server}")
            return None
        version = _portkey_version(root)
        proc = Proc(name, ["node", str(server), f"--port={port}", "--headless"], logs / "gateway.log",
                    env=_env(NODE_ENV="production"))
        headers = {"Authorization": "Bearer dummy", "x-portkey-provider": "openai",
                   "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1"}
        return Target(name, f"Portkey {version.split(' ')[0]}", url, headers, proc, version)
    if name == "litellm-w1":
        venv = peers_root / "litellm-venv"
        exe = venv / "bin" / "litellm"
        if not os.access(exe, os.X_OK):
            log(f"skipping litellm-w1: no install at {exe}")
            return None
        version = _litellm_version(venv)
        cfg_path = logs / "litellm_config.yaml"
        cfg_path.write_text(yaml.safe_dump(litellm_config(mock_port, BENCH_KEY), sort_keys=False))
        proc = Proc(name, [str(exe), "--config", str(cfg_path), "--host", "127.0.0.1", "--port", str(port),
                           "--num_workers", "1"], logs / "gateway.log",
                    env=_env(LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_LOG="ERROR"))
        return Target(name, f"LiteLLM {version} (1 worker)", url, {"Authorization": f"Bearer {BENCH_KEY}"},
                      proc, version)
    raise ValueError(f"unknown target {name}")


def wait_ready(target: Target, timeout_s: float = READY_TIMEOUT_S) -> float | None:
    """Seconds until a non-streaming request is answered 200; None if it never is (or the process died)."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 8}
    started = time.monotonic()
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() - started < timeout_s:
            if target.proc is not None and not target.proc.alive():
                return None
            with contextlib.suppress(httpx.HTTPError):
                if client.post(target.url, json=body, headers=target.headers).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.5)
    return None


# ---------------------------------------------------------------- measuring

def stream_body(cadence: Cadence, reply: str) -> bytes:
    content = f"{QUESTION} {cadence.directive(reply)}"
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": True,
                       "stream_options": {"include_usage": True}}).encode()


async def one_stream(client: httpx.AsyncClient, target: Target, body: bytes) -> StreamResult:
    headers = {**target.headers, "Content-Type": "application/json", "Accept": "text/event-stream",
               "Accept-Encoding": "identity"}
    clock = time.perf_counter
    rec = StreamRecorder(clock())
    try:
        async with client.stream("POST", target.url, content=body, headers=headers) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")
                rec.result.error = f"HTTP {response.status_code}: {text[:200]}"
                rec.result.total_ms = (clock() - rec.started) * 1000.0
                return rec.result
            async for chunk in response.aiter_bytes():
                rec.feed(chunk, clock())
        return rec.finish(clock())
    except httpx.HTTPError as exc:
        rec.result.error = f"{type(exc).__name__}: {exc}"[:200]
        rec.result.total_ms = (clock() - rec.started) * 1000.0
        return rec.result


async def run_streams(target: Target, cadence: Cadence, n: int, concurrency: int,
                      warmup: int) -> list[StreamResult]:
    """``n`` streams (after ``warmup`` unrecorded ones), the replies of ``REPLIES`` in turn."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        for i in range(warmup):
            await one_stream(client, target, stream_body(cadence, REPLIES[i % len(REPLIES)]))
        results: list[StreamResult] = []
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                reply = REPLIES[i % len(REPLIES)]
                result = await one_stream(client, target, stream_body(cadence, reply))
                result.expected = reply
                results.append(result)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return results


# ---------------------------------------------------------------- run

@dataclass(frozen=True)
class Options:
    targets: list[str]
    requests: int
    concurrency: int
    warmup: int
    out: Path
    peers_root: Path


def measure(opts: Options, work: Path) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {}
    startup: dict[str, Any] = {}
    versions: dict[str, str] = {}
    notes: list[str] = []
    procs: list[Proc] = []
    try:
        mock_port = free_port()
        mock = Proc("mock", [sys.executable, "-m", "infra.doubles.mock_provider", "--host", "127.0.0.1",
                             "--port", str(mock_port)], work / "mock.log", cwd=ROOT)
        procs.append(mock)
        direct = Target("direct", "direct", f"http://127.0.0.1:{mock_port}/v1/chat/completions", {})
        if wait_ready(direct, 30.0) is None:
            raise RuntimeError(f"the mock provider did not start: {mock.tail()}")
        for name in opts.targets:
            log(f"=== {name}")
            target = start_target(name, mock_port, opts.peers_root, work)
            if target is None:
                notes.append(f"{name}: skipped (install missing)")
                continue
            if target.proc is not None:
                procs.append(target.proc)
            try:
                ready = wait_ready(target)
                if ready is None:
                    why = "its process exited" if target.proc and not target.proc.alive() else "timed out"
                    log(f"{name} never became ready ({why}); log tail:\n{target.proc.tail() if target.proc else ''}")
                    notes.append(f"{name}: never became ready ({why})")
                    startup[name] = None
                    continue
                startup[name] = round(ready, 1)
                versions[name] = target.version
                log(f"{name} ready after {ready:.1f} s")
                raw[name] = {}
                for cadence in CADENCES:
                    results = asyncio.run(run_streams(target, cadence, opts.requests, opts.concurrency, opts.warmup))
                    row = {"target": name, "label": target.label, "cadence": cadence.name, **summarize(results)}
                    rows.append(row)
                    raw[name][cadence.name] = [{**asdict(r), "chunks": r.chunks} for r in results]
                    log(f"  {cadence.name}: ok {row['ok']}/{row['requests']}, TTFT p50 {_ms(row['ttft_p50_ms'])} ms, "
                        f"chunks {row['chunks_median']}, errors {row['errors']}, mismatches {row['mismatches']}")
            finally:
                if target.proc is not None:
                    target.proc.stop()
                    procs.remove(target.proc)
    finally:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        try:
            for proc in reversed(procs):
                proc.stop()
        finally:
            signal.signal(signal.SIGINT, old)
    compare(rows)
    return {
        "started_utc": started_at.strftime("%Y-%m-%d %H:%M:%S"),
        "finished_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "params": {"targets": opts.targets, "requests": opts.requests, "concurrency": opts.concurrency,
                   "warmup": opts.warmup, "cadences": [asdict(c) | {"chars_per_s": c.chars_per_s} for c in CADENCES],
                   "replies": list(REPLIES), "reply_chars": [len(r) for r in REPLIES], "question": QUESTION,
                   "cores": os.cpu_count()},
        "goal": {"added_ttft_p50_ms": GOAL_ADDED_TTFT_MS, "chunk_ratio_tolerance": GOAL_CHUNK_RATIO},
        "startup_s": startup,
        "versions": versions,
        "rows": rows,
        "goal_check": goal_lines(rows),
        "notes": notes,
        "requests": raw,
    }


def report(figures: dict[str, Any], out: Path) -> None:
    p = figures["params"]
    print(f"\nTime to first token, run of {figures['started_utc']} UTC ({p['cores']} cores): {p['requests']} "
          f"streams per target and cadence (+{p['warmup']} warm-up), concurrency {p['concurrency']}, "
          f"{len(p['replies'])} prose replies in turn ({min(p['reply_chars'])}-{max(p['reply_chars'])} characters) "
          "from the mock in 4-character chunks.")
    print("Only ratios inside one run count (absolute figures on a shared machine move between runs).\n")
    print(render_table(figures["rows"]))
    print("\ndirect TTFT = one chunk_delay_ms (the mock sends the role chunk at once and waits before the first "
          "content chunk) + the loopback round trip; added = target p50 - direct p50 at the same cadence.")
    for line in figures["goal_check"]:
        print(line)
    for note in figures["notes"]:
        print(f"note: {note}")
    print(f"\nEvery figure (and every request): {out}")


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default=" ".join(DEFAULT_TARGETS),
                   help=f"space- or comma-separated, from {' '.join(KNOWN_TARGETS)} (default: all)")
    p.add_argument("--requests", type=int, default=30, help="measured streams per target and cadence (default 30)")
    p.add_argument("--concurrency", type=int, default=1, help="streams in flight at once (default 1)")
    p.add_argument("--warmup", type=int, default=3, help="streams per target and cadence not counted (default 3)")
    p.add_argument("--out", type=Path, default=None, help="JSON with every figure (default: a temporary file)")
    p.add_argument("--peers-root", type=Path, default=Path(os.environ.get("PEERS_ROOT", "/tmp/peers")),
                   help="where the peers are installed (default $PEERS_ROOT or /tmp/peers)")
    a = p.parse_args(argv)
    targets = [t for t in a.targets.replace(",", " ").split() if t]
    unknown = [t for t in targets if t not in KNOWN_TARGETS]
    if unknown or not targets:
        p.error(f"unknown target(s) {' '.join(unknown)}; choose from {' '.join(KNOWN_TARGETS)}")
    if a.requests < 1 or a.concurrency < 1 or a.warmup < 0:
        p.error("--requests and --concurrency must be >= 1, --warmup >= 0")
    out = a.out or Path(tempfile.gettempdir()) / f"ttft-peers-{datetime.now(UTC):%Y%m%d-%H%M%S}.json"
    return Options(targets, a.requests, a.concurrency, a.warmup, out, a.peers_root)


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _write_json(path: Path, figures: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=1))


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)  # so measure()'s finally stops every process
    work = Path(tempfile.mkdtemp(prefix="ttft-peers-"))
    try:
        figures = measure(opts, work)
    except KeyboardInterrupt:
        log("interrupted; every process stopped")
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _write_json(opts.out, figures)
    report(figures, opts.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
