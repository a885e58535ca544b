"""Start the whole gateway (`gateway up`) for a test or a benchmark: free ports, its own data dir,
stopped by PID. The one launcher ``tests/`` and ``bench/`` share.

Only our own components run; the outside world is the bundled mock provider (``gateway_config``: the
test config, every provider pointing at it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from infra.nats_server import free_port

DEMO_KEY = "sk-gateway-demo"
TEST_CLIENT = "test-"
"""The name prefix of a test's own NATS connections: their refusals are the ones a test provoked."""
LIMITED_KEY = "sk-test-limited"


def gateway_config(mock_port: int, **overrides: Any) -> dict[str, Any]:
    base = f"http://127.0.0.1:{mock_port}"
    config: dict[str, Any] = {
        "version": 1,
        "keys": [
            {"id": "demo", "key_sha256": hashlib.sha256(DEMO_KEY.encode()).hexdigest(), "tenant": "acme",
             "models": ["*"]},
            {"id": "limited", "key_sha256": hashlib.sha256(LIMITED_KEY.encode()).hexdigest(),
             "tenant": "globex", "models": ["gpt-4o-mini"], "max_input_chars": 200},
        ],
        "mock_provider": {"enabled": True, "port": mock_port},
        "providers": {
            "mock-openai": {"type": "openai", "base_url": f"{base}/v1"},
            "mock-anthropic": {"type": "anthropic", "base_url": base},
            "mock-gemini": {"type": "gemini", "base_url": base},
            "mock-cohere": {"type": "cohere", "base_url": base},
            "mock-bedrock": {"type": "bedrock", "region": "us-east-1", "base_url": base},
            "dead": {"type": "openai", "base_url": f"http://127.0.0.1:{free_port()}/v1", "connect_timeout_s": 0.5},
        },
        "models": {
            "gpt-4o-mini": {"targets": [
                {"provider": "mock-openai", "model": "gpt-4o-mini",
                 "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.60}},
                {"provider": "mock-anthropic", "model": "claude-3-5-haiku-latest"},
            ]},
            "claude-3-5-haiku": {"targets": [{"provider": "mock-anthropic", "model": "claude-3-5-haiku-latest",
                                              "price": {"input_per_mtok": 0.8, "output_per_mtok": 4}}]},
            "gemini-2.0-flash": {"targets": [{"provider": "mock-gemini", "model": "gemini-2.0-flash"}]},
            "command-r": {"targets": [{"provider": "mock-cohere", "model": "command-r-08-2024"}]},
            "nova-lite": {"targets": [{"provider": "mock-bedrock", "model": "amazon.nova-lite-v1:0",
                                       "price": {"input_per_mtok": 0.06, "output_per_mtok": 0.24}}]},
            "text-embedding-3-small": {"targets": [{"provider": "mock-openai", "model": "text-embedding-3-small"}]},
            "embed-fallback": {"targets": [{"provider": "mock-anthropic", "model": "claude-3-5-haiku-latest"},
                                           {"provider": "mock-openai", "model": "text-embedding-3-small"}]},
            "fallback-demo": {"targets": [
                {"provider": "dead", "model": "x"},
                {"provider": "mock-gemini", "model": "gemini-2.0-flash"},
            ]},
            "all-dead": {"targets": [{"provider": "dead", "model": "x"}]},
            "house-model": {"targets": [{"provider": "mock-openai", "model": "house-model-7b"}]},
        },
        "retry": {"attempts_per_target": 2, "base_delay_ms": 20, "max_delay_ms": 200, "max_retry_after_s": 2},
        "output_filter": {"blocked": [{"name": "secret", "pattern": "TOP-SECRET-\\w+", "action": "block"}]},
        "limits": {"max_body_bytes": 65536},
    }
    config.update(overrides)
    return config


def permission_violations(nats_log: str) -> list[str]:
    """nats-server's log lines where it refused a publish or a subscription of one of the gateway's own
    processes (a permission the chain needs and its identity lacks); a test's own connections
    (``TEST_CLIENT``), refused on purpose, are left out."""
    return [line for line in nats_log.splitlines() if ("Publish Violation" in line or "Subscription Violation" in line)
            and f":{TEST_CLIENT}" not in line]


@dataclass
class RunningGateway:
    process: subprocess.Popen[bytes]
    root: Path
    port: int
    nats_port: int
    mock_port: int
    env: dict[str, str]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mock_url(self) -> str:
        return f"http://127.0.0.1:{self.mock_port}"

    @property
    def nats_url(self) -> str:
        return f"nats://127.0.0.1:{self.nats_port}"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def pids(self) -> dict[str, int]:
        data: dict[str, int] = json.loads((self.root / "data" / "pids.json").read_text())
        return data

    def permission_violations(self) -> list[str]:
        """Where nats-server refused one of the gateway's own processes (``permission_violations``)."""
        path = self.data_dir / "nats-server.log"
        return permission_violations(path.read_text(errors="replace") if path.exists() else "")

    def log(self, name: str) -> str:
        path = self.root / "data" / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def sql(self, query: str) -> list[dict[str, Any]]:  # through `gateway sql`, as an analyst would
        out = subprocess.run([sys.executable, "-m", "infra.operator.cli", "sql", "--format", "json", query],
                             env=self.env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"gateway sql failed: {out.stderr}")
        result = json.loads(out.stdout)
        return [dict(zip(result["columns"], row, strict=True)) for row in result["rows"]]

    def wait_rows(self, query: str, predicate: Any, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        rows: list[dict[str, Any]] = []
        last_error = ""
        while time.monotonic() < deadline:
            try:
                rows = self.sql(query)
            except AssertionError as exc:  # the sink may be restarting: keep asking until the deadline
                last_error = str(exc)
                time.sleep(0.5)
                continue
            if predicate(rows):
                return rows
            time.sleep(0.3)
        raise AssertionError(f"condition not met within {timeout_s}s; last rows: {rows[:5]} {last_error}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # anything left in the group
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def start_gateway(root: Path, config: dict[str, Any] | None = None, replicas: list[str] | None = None,
                  extra_env: dict[str, str] | None = None, timeout_s: float = 90.0,
                  layout: str | None = None) -> RunningGateway:
    root.mkdir(parents=True, exist_ok=True)
    mock_port = free_port()
    cfg = config if config is not None else gateway_config(mock_port)
    cfg.setdefault("mock_provider", {"enabled": True, "port": mock_port})
    mock_port = int(cfg["mock_provider"]["port"])
    (root / "gateway.yaml").write_text(yaml.safe_dump(cfg))
    port, nats_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "CLICKHOUSE_URL")}
    env.update({
        "GATEWAY_CONFIG": str(root / "gateway.yaml"),
        "GATEWAY_DATA_DIR": str(root / "data"),
        "GATEWAY_PORT": str(port),
        "GATEWAY_NATS_PORT": str(nats_port),
        "GATEWAY_ACK_WAIT_S": "2",
        **(extra_env or {}),
    })
    args = [sys.executable, "-m", "infra.operator.cli", "up"]
    if layout is not None:
        args += ["--layout", layout]
    for r in replicas or []:
        args += ["--replicas", r]
    with open(root / "gateway-up.log", "wb") as out:  # the child writes to its own copy
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    gw = RunningGateway(process, root, port, nats_port, mock_port, env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "gateway ready" in (root / "gateway-up.log").read_text(errors="replace"):
            return gw
        if process.poll() is not None:
            break
        time.sleep(0.1)
    log = (root / "gateway-up.log").read_text(errors="replace")
    gw.stop()
    raise RuntimeError(f"gateway did not become ready:\n{log[-4000:]}")


def mock_requests(gw: RunningGateway) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = httpx.get(f"{gw.mock_url}/_mock/requests", timeout=5).json()
    return data
