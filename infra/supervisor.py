"""``gateway up``: the whole gateway as supervised OS processes.

Starts the embedded nats-server (unless ``NATS_URL``), declares the JetStream streams, starts the
mock provider when the config asks for it, then the sink, the five stage workers and ingress. A child
that dies is restarted with backoff; SIGINT/SIGTERM stops everything (ingress first, sink last).
Each worker announces itself on ``gw.ctl.ready`` once its subscriptions are live; ``gateway up``
prints ``gateway ready`` when all have, and writes the children's PIDs to ``<data_dir>/pids.json``.

Config (hot reload): the config file is the source of truth under ``gateway up``. Before any worker
starts, its text is published to the ``GW_CONFIG`` KV bucket (overwriting whatever an earlier
``gateway config apply`` pushed); then the file is polled every second (mtime and size, then the
content hash) and each valid change is published, which every worker takes up without a restart. An
invalid change is refused with the error naming the bad path, and the active config stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats
import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infra import jetstream
from infra.config import ConfigError, load_config, version_of
from infra.config_store import fetch_active, publish_config
from infra.nats_server import EmbeddedNats, start_nats, wait_for_port
from infra.settings import Settings
from schemas import subjects

# (name, module) in start order; the sink first (it owns and migrates the store), ingress last.
WORKERS: list[tuple[str, str]] = [
    ("sink", "workers.sink"),
    ("redaction", "workers.redaction"),
    ("policy", "workers.policy"),
    ("routing", "workers.routing"),
    ("provider", "workers.provider"),
    ("output_filter", "workers.output_filter"),
]


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    next_start: float = 0.0
    backoff_s: float = 0.5

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        log.close()
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _file_signature(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass
class Supervisor:
    settings: Settings
    replicas: dict[str, int] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)
    nats: EmbeddedNats | None = None
    stopping: bool = False
    config_poll_s: float = 1.0
    _config_signature: tuple[int, int, int] | None = None

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir.resolve()

    def _env(self, nats_url: str) -> dict[str, str]:
        env = dict(os.environ)
        env["NATS_URL"] = nats_url
        env["GATEWAY_CONFIG"] = str(self.settings.config.resolve())
        env["GATEWAY_DATA_DIR"] = str(self.data_dir)
        env["GATEWAY_HOST"] = self.settings.host
        env["GATEWAY_PORT"] = str(self.settings.port)
        env.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
        return env

    def _plan(self, nats_url: str) -> list[Child]:
        config = load_config(self.settings.config)
        env = self._env(nats_url)
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        py = sys.executable
        plan: list[Child] = []
        if config.mock_provider.enabled:
            plan.append(Child("mock_provider", [py, "-m", "infra.mock_provider", "--port",
                                                str(config.mock_provider.port)], env, logs / "mock_provider.log"))
        for name, module in WORKERS:
            count = 1 if name == "sink" else max(1, self.replicas.get(name, 1))
            for i in range(count):
                label = name if count == 1 else f"{name}.{i}"
                plan.append(Child(label, [py, "-m", module], env, logs / f"{label}.log"))
        plan.append(Child("ingress", [py, "-m", "ingress"], env, logs / "ingress.log"))
        return plan

    def write_pids(self) -> None:
        pids = {c.name: c.pid for c in self.children if c.pid}
        if self.nats is not None:
            pids["nats-server"] = self.nats.process.pid
        path = self.data_dir / "pids.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(pids, indent=1))
        tmp.replace(path)

    async def run(self) -> int:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.settings.sealing_key()  # create the envelope key once, before any worker races for it
        nats_url = self.settings.nats_url
        if not nats_url:
            self.nats = start_nats(self.data_dir / "nats", self.settings.nats_port,
                                   log_file=self.data_dir / "nats-server.log")
            nats_url = self.nats.url
        nc = await nats.connect(nats_url, name="supervisor", max_reconnect_attempts=-1)
        await jetstream.declare(nc.jetstream(), self.settings)
        await self.publish_config_file(nc.jetstream())  # before any worker starts: none serves a stale one
        config_watch = asyncio.create_task(self.watch_config_file(nc.jetstream()))
        ready: set[str] = set()

        async def on_ready(msg: Msg) -> None:
            ready.add(str(orjson.loads(msg.data)["name"]))

        await nc.subscribe(subjects.CTL_READY, cb=on_ready)
        await nc.flush()
        self.children = self._plan(nats_url)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        for child in self.children:
            child.start()
            if child.name == "mock_provider":
                await asyncio.to_thread(wait_for_port, "127.0.0.1", int(child.args[-1]), 20.0)
        self.write_pids()
        await self._announce_when_ready(ready, stop)
        while not stop.is_set():
            self._restart_dead()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=0.2)
        config_watch.cancel()
        await self.shutdown()
        with contextlib.suppress(Exception):
            await nc.close()
        return 0

    # -- the config file (hot reload) -----------------------------------------------------------------

    async def publish_config_file(self, js: JetStreamContext) -> str:
        """Make the config file the active config (the file wins at start, see the module doc)."""
        path = self.settings.config.resolve()
        self._config_signature = _file_signature(path)
        version = await publish_config(js, path.read_text(), f"file:{path}", label=str(path))
        print(f"gateway: config {version} from {path}", flush=True)
        return version

    async def watch_config_file(self, js: JetStreamContext) -> None:
        """Poll the file; publish each valid change, refuse (and log) an invalid one."""
        path = self.settings.config.resolve()
        while True:
            await asyncio.sleep(self.config_poll_s)
            try:
                await self._check_config_file(js, path)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. NATS briefly unreachable: retry next poll
                self._config_signature = None
                print(f"gateway: could not publish the config change from {path}: {exc!r}; retrying",
                      file=sys.stderr, flush=True)

    async def _check_config_file(self, js: JetStreamContext, path: Path) -> None:
        try:
            signature = _file_signature(path)
        except FileNotFoundError:
            return  # being replaced, or removed: the active config stays
        if signature == self._config_signature:
            return
        await asyncio.sleep(0.2)  # let a writer finish: act only on a file that stopped changing
        if _file_signature(path) != signature:
            return
        self._config_signature = signature
        text = path.read_text()
        try:
            active = await fetch_active(js)
        except ConfigError:  # not a config value (written around the validator): replace it
            active = None
        if active is not None and active.version == version_of(text):
            return
        current = active.version if active is not None else "none"
        if not text.strip():
            print(f"gateway: {path} is empty; ignored, config {current} stays active", file=sys.stderr, flush=True)
            return
        try:
            version = await publish_config(js, text, f"file:{path}", label=str(path))
        except ConfigError as exc:
            print(f"gateway: config change refused, config {current} stays active: {exc}", file=sys.stderr,
                  flush=True)
            return
        print(f"gateway: config {version} applied from {path} (was {current})", flush=True)

    async def _announce_when_ready(self, ready: set[str], stop: asyncio.Event) -> None:
        workers = {name for name, _ in WORKERS}
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            self._restart_dead()
            if workers <= {r.split(".")[0] for r in ready}:
                with contextlib.suppress(TimeoutError):
                    await asyncio.to_thread(wait_for_port, self.settings.host, self.settings.port, 0.2)
                    print(f"gateway ready on http://{self.settings.host}:{self.settings.port} "
                          f"(logs and pids in {self.data_dir})", flush=True)
                    return
            await asyncio.sleep(0.1)
        if not stop.is_set():
            missing = sorted(workers - ready)
            print(f"gateway: workers not ready after 120s: {missing}; see {self.data_dir / 'logs'}", flush=True)

    def _restart_dead(self) -> None:
        now = time.monotonic()
        changed = False
        for child in self.children:
            if child.alive() or self.stopping:
                continue
            if child.process is not None:
                code = child.process.returncode
                if now - child.started_at > 30:
                    child.backoff_s = 0.5
                child.next_start = now + child.backoff_s
                print(f"gateway: {child.name} (pid {child.pid}) exited with {code}; "
                      f"restarting in {child.backoff_s:.1f}s", file=sys.stderr, flush=True)
                child.backoff_s = min(child.backoff_s * 2, 10.0)
                child.process = None
            if now >= child.next_start:
                child.restarts += 1
                child.start()
                changed = True
        if changed:
            self.write_pids()

    async def shutdown(self) -> None:
        self.stopping = True
        order = ["ingress", "mock_provider", "redaction", "policy", "routing", "provider", "output_filter", "sink"]
        for group in order:
            members = [c for c in self.children if c.name.split(".")[0] == group and c.alive()]
            for child in members:
                assert child.process is not None
                child.process.send_signal(signal.SIGTERM)
            for child in members:
                assert child.process is not None
                try:
                    await asyncio.to_thread(child.process.wait, 15)
                except subprocess.TimeoutExpired:
                    child.process.kill()
                    child.process.wait()
        if self.nats is not None:
            self.nats.stop()
        with contextlib.suppress(FileNotFoundError):
            (self.data_dir / "pids.json").unlink()
        print("gateway stopped", flush=True)


def up(settings: Settings, replicas: dict[str, int]) -> int:
    supervisor = Supervisor(settings, replicas)
    try:
        import uvloop

        return uvloop.run(supervisor.run())
    except ImportError:  # pragma: no cover
        return asyncio.run(supervisor.run())
