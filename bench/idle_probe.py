"""What an idle gateway costs: every process's CPU (% of one core) and RSS over a quiet window.

    python bench/idle_probe.py [--window 30] [--no-ner]

Starts ``gateway up`` with the shipped ``config/gateway.yaml`` (providers pointed at the bundled mock on
a free port), sends a few requests to warm it up, waits 5 s, then reads ``utime + stime`` of the
supervisor and every child from ``/proc`` at the start and the end of ``--window`` seconds without
traffic. ``--no-ner``: drop every key's and model's guardrail profile, so no profile uses the NER engine
(spaCy is then never loaded). The mock provider is listed but not counted. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import os
import shutil
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

from infra.nats_server import free_port  # noqa: E402
from infra.operator.launcher import DEMO_KEY, start_gateway  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def shipped_config(no_ner: bool) -> dict[str, Any]:
    cfg: dict[str, Any] = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text())
    port = free_port()
    cfg["mock_provider"] = {"enabled": True, "port": port}
    for provider in cfg["providers"].values():
        provider["base_url"] = provider["base_url"].replace(":8090", f":{port}")
    if no_ner:
        for entry in [*cfg["keys"], *cfg["models"].values()]:
            entry.pop("guardrail_profile", None)
    return cfg


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=float, default=30.0, help="quiet seconds measured (default 30)")
    parser.add_argument("--no-ner", action="store_true", help="no key or model uses a NER profile")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="idle-probe-"))
    gw = start_gateway(tmp / "gw", config=shipped_config(args.no_ner))
    try:
        for _ in range(5):
            httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=30,
                       json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]},
                       headers={"Authorization": f"Bearer {DEMO_KEY}"})
        time.sleep(5)
        pids = {**gw.pids(), "gateway-up": gw.process.pid}
        before = {name: cpu_s(pid) for name, pid in pids.items()}
        time.sleep(args.window)
        total_pct = total_rss = 0.0
        print("| process | CPU % of a core | RSS MB |\n|---|---|---|")
        for name, pid in pids.items():
            pct, rss = 100 * (cpu_s(pid) - before[name]) / args.window, rss_mb(pid)
            if name != "mock_provider":
                total_pct, total_rss = total_pct + pct, total_rss + rss
            print(f"| {name} | {pct:.1f} | {rss:.0f} |")
        print(f"| **gateway (mock excluded)** | **{total_pct:.1f}** | **{total_rss:.0f}** |")
        return 0
    finally:
        gw.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
