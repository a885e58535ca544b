"""``gateway up``: the whole gateway as supervised OS processes.

Starts the embedded nats-server (unless ``NATS_URL``), declares the JetStream streams, starts the mock
provider when the config asks for it, then the sink, the stage workers and ingress. Every child is
supervised, the embedded nats-server included: one that dies is restarted at once, or with a growing
backoff if it died before it ever served (a crash loop); SIGINT/SIGTERM stops everything (ingress
first, sink and nats-server last).

Layouts (``--layout``): ``hosted`` (default) runs every stage worker in each of two ``workers.host``
processes (``stages.0``, ``stages.1``): two replicas of every stage, so a process that dies never stops
the chain, for the memory of two interpreters. ``split`` runs one process per stage replica (two of each
by default), for scale-out across machines. ``--replicas NAME=N`` sets the count of ``stages``,
``ingress``, ``lane``, ``batch`` or, in the split layout, of one stage. Two ingress processes share the
HTTP port (``SO_REUSEPORT``) by default.

The batch lane, in either layout: batch jobs' lines and async requests run through every stage in
processes of their own (``GATEWAY_LANE=batch``) at the lowest CPU priority, on the lane's own subjects
(``schemas/subjects.py`` in_lane): a ``workers.host`` (``lane``, one by default) in the hosted layout, a
process per stage (``redaction_lane`` ... ``output_filter_lane``, one each) in the split layout, each
with its stage's identity and secrets only. The batch driver (``batch``) feeds it.

Ready means ready: every child announces itself on ``gw.ctl.ready`` once it can take requests (stage
workers after loading their models and subscribing; ingress once it sees a live replica of every stage);
``gateway up`` prints ``gateway ready`` when all have, and writes the children's PIDs to
``<data_dir>/pids.json``.

NATS identities: every child connects as its own (``infra/nats_permissions.py``): the seeds are generated
under ``<data_dir>/nats/creds`` on first start, the embedded nats-server gets their public keys and
permissions, and each child gets only its own seed's path in ``GATEWAY_NATS_CREDS``.

Environment: no child inherits this process's. Each starts with what its kind needs
(``infra/child_env.py``): provider credentials named by the config's ``env:`` references only in the
processes that run the provider stage (both ``workers.host`` in the hosted layout, the provider processes in
the split layout), ``CLICKHOUSE_URL`` only in the sink, the admin key's hash only in ingress. A config
change cannot give a running process a new variable: a newly referenced secret needs a restart.

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

import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from infra import jetstream, nats_connect, nats_identity
from infra.bootstrap import check_config, load_config, parse_config_text
from infra.child_env import LANE_STAGES, STAGES, child_env, identity_for, lane_of, secrets_not_given
from infra.children import spawn
from infra.config import ConfigError, version_of
from infra.config_store import fetch_active, publish_config
from infra.nats_server import EmbeddedNats, start_nats, wait_for_port
from infra.nats_users import ensure_identities, users_block
from infra.private_files import private_dir
from infra.settings import Settings
from schemas import subjects
from schemas.config import GatewayConfig

LAYOUTS = ("hosted", "split")
DEFAULT_REPLICAS = {"batch": 1, "lane": 1, **{kind: 1 for kind in LANE_STAGES}}
"""Replicas of each kind unless ``--replicas`` says otherwise: two of every worker kind, one batch worker
(its jobs wait in the broker while it restarts, and the chain keeps its answers until it is back) and one
batch lane host (its lines wait in ``GW_REQ`` while it restarts)."""
READY_TIMEOUT_S = 120.0
STOP_ORDER = ("ingress", "stages", *STAGES, "lane", *LANE_STAGES, "batch", "mock_provider", "sink")
"""Ingress first (no new request), then the stages finish what they hold: the batch worker outlives them
(their answers to batch lines are stored before they let go of the lines), and so does the demo provider
(a line in the chain is answered, not cut); the sink last (every record is written)."""


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
    backoff_s: float = 0.0
    served: bool = False  # announced itself ready since its last start

    @property
    def kind(self) -> str:
        return self.name.split(".")[0]

    def start(self) -> None:
        self.process = spawn(self.args, env=self.env, log_path=self.log_path)
        self.started_at = time.monotonic()
        self.served = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _file_signature(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _named(kind: str, count: int) -> list[str]:
    return [kind] if count == 1 else [f"{kind}.{i}" for i in range(count)]


@dataclass
class Supervisor:
    settings: Settings
    replicas: dict[str, int] = field(default_factory=dict)
    layout: str = "hosted"
    children: list[Child] = field(default_factory=list)
    nats: EmbeddedNats | None = None
    stopping: bool = False
    config: GatewayConfig = field(default_factory=GatewayConfig)  # the file at start (run)
    config_poll_s: float = 1.0
    _config_signature: tuple[int, int, int] | None = None
    _nats_backoff_s: float = 0.0
    _nats_restart_at: float = 0.0
    creds: dict[str, Path] = field(default_factory=dict)  # each NATS identity's seed file

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir.resolve()

    @property
    def identity(self) -> str:
        """The NATS identity this process publishes its audit entries as (the config file it publishes):
        the one its connection authenticates as."""
        return nats_identity.identity_of(self.creds.get("supervisor"))

    def _env(self, kind: str, config: GatewayConfig, nats_url: str) -> dict[str, str]:
        """A child's environment: what its kind needs (``infra/child_env.py``), and where to find the rest."""
        env = child_env(kind, config, os.environ)
        identity = identity_for(kind)
        if identity is not None:
            env["GATEWAY_NATS_CREDS"] = str(self.creds[identity])  # its own identity's, and only that
        if kind != "mock_provider":
            env["NATS_URL"] = nats_url
            env["GATEWAY_CONFIG"] = str(self.settings.config.resolve())
            env["GATEWAY_DATA_DIR"] = str(self.data_dir)
            env["GATEWAY_HOST"] = self.settings.host
            env["GATEWAY_PORT"] = str(self.settings.port)
        return env

    def _plan(self, nats_url: str) -> list[Child]:
        config = self.config
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        py = sys.executable

        def child(name: str, *args: str) -> Child:
            kind = name.split(".")[0]
            env = self._env(kind, config, nats_url)
            env["GATEWAY_PROCESS_NAME"] = name
            if kind not in ("mock_provider", "sink", "ingress", "batch"):
                env["GATEWAY_LANE"] = lane_of(kind)
            return Child(name, [py, *args], env, logs / f"{name}.log")

        plan: list[Child] = []
        if config.mock_provider.enabled:
            plan.append(child("mock_provider", "-m", "infra.doubles.mock_provider",
                              "--port", str(config.mock_provider.port)))
        plan.append(child("sink", "-m", "workers.sink"))
        plan += [child(name, "-m", "workers.batch") for name in _named("batch", self.count("batch"))]
        if self.layout == "hosted":
            plan += [child(name, "-m", "workers.host") for name in _named("stages", self.count("stages"))]
        else:
            for stage in STAGES:
                plan += [child(name, "-m", f"workers.{stage}") for name in _named(stage, self.count(stage))]
        # the batch lane (batch jobs' lines, async requests): every stage in processes of its own, at the
        # lowest CPU priority: one host in the hosted layout, a process per stage in the split one
        if self.layout == "hosted":
            plan += [child(name, "-m", "workers.host") for name in _named("lane", self.count("lane"))]
        else:
            for stage, kind in zip(STAGES, LANE_STAGES, strict=True):
                plan += [child(name, "-m", f"workers.{stage}") for name in _named(kind, self.count(kind))]
        plan += [child(name, "-m", "ingress") for name in _named("ingress", self.count("ingress"))]
        return plan

    def count(self, kind: str) -> int:
        return max(1, self.replicas.get(kind, DEFAULT_REPLICAS.get(kind, 2)))

    def write_pids(self) -> None:
        pids = {c.name: c.pid for c in self.children if c.pid}
        if self.nats is not None:
            pids["nats-server"] = self.nats.process.pid
        path = self.data_dir / "pids.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(pids, indent=1))
        tmp.replace(path)

    async def run(self) -> int:
        private_dir(self.data_dir)  # 0700: nothing under it readable by another user
        self.config = load_config(self.settings.config)  # the children's environments are built from it
        self._warn_secrets_not_given(self.config, "")
        self.settings.sealing_key()  # create the envelope key once, before any worker races for it
        self.creds = ensure_identities(self.data_dir)  # every NATS identity's seed, before nats-server starts
        nats_url = self.settings.nats_url
        if not nats_url:
            self.nats = self._start_nats()  # on this thread: its child must die with this process
            nats_url = self.nats.url
            print(f"gateway: nats-server with JetStream on {nats_url} (store {self.data_dir / 'nats'})", flush=True)
        nc = await nats_connect.connect(nats_url, "supervisor", creds=self.creds["supervisor"])
        await jetstream.declare(nc.jetstream(), self.settings)
        await self.publish_config_file(nc.jetstream())  # before any worker starts: none serves a stale one
        config_watch = asyncio.create_task(self.watch_config_file(nc.jetstream()))
        ready: dict[int, float] = {}  # pid -> when it announced itself

        async def on_ready(msg: Msg) -> None:
            pid = int(orjson.loads(msg.data).get("pid") or 0)
            if pid and pid not in ready:
                ready[pid] = time.monotonic()
                self._announce_back(pid)

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
        # A child's death wakes the loop at once (its pidfd becomes readable); otherwise it looks once a
        # second, or every 0.1 s while a restart waits for its backoff. An idle supervisor stays asleep.
        exits = ExitWatch(loop)
        while not stop.is_set():
            exits.exited.clear()
            await self._supervise()
            watching = exits.watch(self._live_pids())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1 if self._restart_pending() or not watching else 1.0):
                    await _first(stop, exits.exited)
        exits.close()
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
        version = await publish_config(js, path.read_text(), f"file:{path}", check=check_config,
                                       identity=self.identity, label=str(path))
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
            version = await publish_config(js, text, f"file:{path}", check=check_config,
                                       identity=self.identity, label=str(path))
        except ConfigError as exc:
            print(f"gateway: config change refused, config {current} stays active: {exc}", file=sys.stderr,
                  flush=True)
            return
        print(f"gateway: config {version} applied from {path} (was {current})", flush=True)
        self._warn_secrets_not_given(parse_config_text(text, str(path)),
                                     " (a new secret needs a restart of gateway up)")

    def _warn_secrets_not_given(self, config: GatewayConfig, why: str) -> None:
        """Say which referenced secrets the stage processes do not have (their targets fail until restarted)."""
        for stage, names in secrets_not_given(config, self.config, os.environ).items():
            print(f"gateway: the {stage} processes do not have {', '.join(names)}, referenced in the config{why}",
                  file=sys.stderr, flush=True)

    def _start_nats(self) -> EmbeddedNats:
        return start_nats(self.data_dir / "nats", self.settings.nats_port, log_file=self.data_dir / "nats-server.log",
                          env=child_env("nats-server", self.config, os.environ),
                          authorization=users_block(self.data_dir))

    def _announce_back(self, pid: int) -> None:
        """A child says it serves (again, after a restart: say so, with how long it took)."""
        for child in self.children:
            if child.pid == pid:
                child.served = True
                if child.restarts:
                    print(f"gateway: {child.name} serves again ({time.monotonic() - child.started_at:.1f}s after "
                          "its restart)", flush=True)

    # -- supervision ----------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        await self._restart_nats()
        self._restart_dead()

    async def _restart_nats(self) -> None:
        """The embedded nats-server is a child like the others: restarted on its JetStream store, on the
        same port. Every client reconnects by itself; requests it had accepted are still in GW_REQ."""
        if self.nats is None or self.stopping or self.nats.process.poll() is None:
            return
        now = time.monotonic()
        if self._nats_restart_at == 0.0:
            code = self.nats.process.returncode
            self._nats_restart_at = now + self._nats_backoff_s
            print(f"gateway: nats-server (pid {self.nats.process.pid}) exited with {code}; restarting"
                  + (f" in {self._nats_backoff_s:.1f}s" if self._nats_backoff_s else ""), file=sys.stderr, flush=True)
        if now < self._nats_restart_at:
            return
        try:
            self.nats = self._start_nats()  # on this thread (see infra/children.py); it takes a fraction of a second
        except Exception as exc:  # noqa: BLE001 - e.g. the port still held: try again shortly
            print(f"gateway: nats-server did not start ({exc}); trying again", file=sys.stderr, flush=True)
            self._nats_backoff_s = min(max(0.5, self._nats_backoff_s * 2), 10.0)
            self._nats_restart_at = time.monotonic() + self._nats_backoff_s
            return
        self._nats_restart_at = 0.0
        self._nats_backoff_s = 0.0  # it started and accepts connections: a later death is a new failure
        print(f"gateway: nats-server restarted (pid {self.nats.process.pid})", flush=True)
        self.write_pids()

    async def _announce_when_ready(self, ready: dict[int, float], stop: asyncio.Event) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not stop.is_set() and time.monotonic() < deadline:
            await self._supervise()
            waiting = [c for c in self.children if c.name != "mock_provider" and c.pid not in ready]
            if not waiting:
                self._print_ready()
                return
            await asyncio.sleep(0.05)
        if not stop.is_set():
            missing = sorted(c.name for c in self.children if c.name != "mock_provider" and c.pid not in ready)
            print(f"gateway: not ready after {READY_TIMEOUT_S:.0f}s, waiting for {missing}; "
                  f"see {self.data_dir / 'logs'}", flush=True)

    def _print_ready(self) -> None:
        kinds: dict[str, int] = {}
        for child in self.children:
            kinds[child.kind] = kinds.get(child.kind, 0) + 1
        labels = {"lane": "lane (batch stages)", "batch": "batch (driver)"}
        started = ", ".join(f"{n} {labels.get(k, k)}" if n > 1 else labels.get(k, k) for k, n in kinds.items())
        print(f"gateway: started {started} ({self.layout} layout)", flush=True)
        print(f"gateway ready on http://{self.settings.host}:{self.settings.port} "
              f"(logs and pids in {self.data_dir})", flush=True)

    def _live_pids(self) -> set[int]:
        pids = {child.pid for child in self.children if child.alive() and child.pid}
        if self.nats is not None and self.nats.process.poll() is None:
            pids.add(self.nats.process.pid)
        return pids

    def _restart_pending(self) -> bool:
        """A dead child (nats-server included) waits for its restart."""
        if self.nats is not None and self.nats.process.poll() is not None:
            return True
        return any(not child.alive() for child in self.children)

    def _restart_dead(self) -> None:
        now = time.monotonic()
        changed = False
        for child in self.children:
            if child.alive() or self.stopping:
                continue
            if child.process is not None:
                code = child.process.returncode
                if child.served:
                    child.backoff_s = 0.0  # it had been serving: a new failure, not a crash loop
                child.next_start = now + child.backoff_s
                print(f"gateway: {child.name} (pid {child.pid}) exited with {code}; restarting"
                      + (f" in {child.backoff_s:.1f}s" if child.backoff_s else ""), file=sys.stderr, flush=True)
                child.backoff_s = min(max(0.5, child.backoff_s * 2), 10.0)
                child.process = None
            if now >= child.next_start:
                child.restarts += 1
                child.start()
                changed = True
        if changed:
            self.write_pids()

    async def shutdown(self) -> None:
        self.stopping = True
        for group in STOP_ORDER:
            members = [c for c in self.children if c.kind == group and c.alive()]
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


def up(settings: Settings, replicas: dict[str, int], layout: str = "hosted") -> int:
    supervisor = Supervisor(settings, replicas, layout)
    try:
        import uvloop

        return uvloop.run(supervisor.run())
    except ImportError:  # pragma: no cover
        return asyncio.run(supervisor.run())


class ExitWatch:
    """Sets ``exited`` when a watched process exits, through a pidfd per process (Linux 5.3+): no
    polling, and no SIGCHLD handler (uvloop keeps SIGCHLD for itself)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.exited = asyncio.Event()
        self._fds: dict[int, int] = {}

    def watch(self, pids: set[int]) -> bool:
        """Watch these processes (those already watched stay); False when pidfds are not available."""
        for pid in pids - self._fds.keys():
            try:
                fd = os.pidfd_open(pid)
            except (AttributeError, OSError):  # no pidfd here, or already gone: the caller polls
                return False
            self._fds[pid] = fd
            self.loop.add_reader(fd, self._on_exit, pid)
        return True

    def _on_exit(self, pid: int) -> None:
        fd = self._fds.pop(pid, None)
        if fd is not None:
            self.loop.remove_reader(fd)
            os.close(fd)
        self.exited.set()

    def close(self) -> None:
        for pid in list(self._fds):
            fd = self._fds.pop(pid)
            self.loop.remove_reader(fd)
            os.close(fd)


async def _first(*events: asyncio.Event) -> None:
    """Until one of ``events`` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
