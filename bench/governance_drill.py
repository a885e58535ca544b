"""Governance drill: budgets and rate limits shared by several policy replicas, under real load.

    python bench/governance_drill.py [--replicas policy=4 --replicas ingress=2] [--concurrency 200]
                                     [--budget-s 12] [--rpm 120] [--rate 4] [--rpm-s 60]
                                     [--revoke-rate 50] [--revoke-s 10] [--json]

Starts ``gateway up`` (split layout, free ports, a temporary data dir, the bundled mock provider) with
two keys on ``gpt-4o-mini``:

(a) ``drill-budget``, a small daily budget (``--budget-usd``, by default ≈ 300 requests' actual cost):
    ``--concurrency`` clients send back to back for ``--budget-s`` seconds. Reservations are taken by
    ``--replicas policy=N`` replicas on one shared ledger, so the accepted spend (ClickHouse ``requests``
    and the ledger entry) must stay within the budget plus one request's maximum cost;
(b) ``drill-rpm``, ``--rpm`` requests per minute: an open-loop load of ``--rate`` req/s for ``--rpm-s``
    seconds; the accepted count over the minute must be the limit ± 5 %;
(c) revocation: a key created with ``gateway keys create`` (the ``GW_KEYS`` bucket) carries an open-loop
    load of ``--revoke-rate`` req/s spread over the ingress processes (``--replicas ingress=2``) for
    ``--revoke-s`` seconds; half-way through, ``gateway keys revoke`` runs. Every request sent more than
    1 s after the revoke command returned must be refused (401 ``key_revoked``); the drill prints when
    the last accepted and the first refused requests were sent, relative to that moment.

Prints the figures (and one JSON object with ``--json``); exits non-zero when a check fails. Nothing
is judged by wall-clock speed. ``tests/integration/test_governance.py`` runs a short variant.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import nats

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra import bootstrap  # noqa: E402
from infra.ledger import Ledger  # noqa: E402
from infra.nats_connect import credentials  # noqa: E402
from infra.nats_creds import seed_path  # noqa: E402
from infra.operator.launcher import RunningGateway, gateway_config, start_gateway  # noqa: E402
from schemas.config import GatewayConfig  # noqa: E402
from schemas.governance import LedgerState, nusd_to_usd, usd_to_nusd  # noqa: E402
from stages.governance.draft import Draft  # noqa: E402
from stages.governance.estimate import Pricing, estimate  # noqa: E402

BUDGET_KEY, RPM_KEY = "sk-drill-budget", "sk-drill-rpm"
MODEL = "gpt-4o-mini"
BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 64,
                        "messages": [{"role": "user", "content": "Say something short about budgets."}]}


def drill_config(mock_port: int, budget_usd: str, rpm: int) -> dict[str, Any]:
    config = gateway_config(mock_port)
    config["keys"] += [
        {"id": "drill-budget", "key_sha256": hashlib.sha256(BUDGET_KEY.encode()).hexdigest(), "tenant": "drill",
         "models": [MODEL], "limits": {"budget_usd": budget_usd, "budget_period": "day"}},
        {"id": "drill-rpm", "key_sha256": hashlib.sha256(RPM_KEY.encode()).hexdigest(), "tenant": "drill",
         "models": [MODEL], "limits": {"rpm": rpm}},
    ]
    return config


def max_cost_nusd(config: dict[str, Any], body: dict[str, Any] = BODY) -> int:
    """One request's maximum cost, as the policy stage reserves it."""
    cfg = GatewayConfig.model_validate(config)
    pricing = Pricing(cfg, bootstrap.price_book(cfg)).of(body["model"])
    return estimate(body, pricing, cfg.governance.default_max_output_tokens).nusd


async def ledger_entry(gw: RunningGateway, key: str) -> LedgerState:
    nc = await nats.connect(gw.nats_url, **credentials(seed_path(gw.data_dir, "admin")))  # as the CLI does
    try:
        return await (await Ledger.open(nc.jetstream(), Draft)).read(key)
    finally:
        await nc.close()


def _outcome(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "ok"
    try:
        code = response.json()["error"]["code"]
    except Exception:  # noqa: BLE001 - whatever it is, it is counted by status
        code = ""
    return f"{response.status_code} {code}".strip()


async def budget_phase(gw: RunningGateway, concurrency: int, duration_s: float) -> Counter[str]:
    """``concurrency`` clients sending back to back for ``duration_s``."""
    outcomes: Counter[str] = Counter()
    stop_at = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {BUDGET_KEY}"}) as client:
        async def worker() -> None:
            while time.monotonic() < stop_at:
                try:
                    outcomes[_outcome(await client.post("/v1/chat/completions", json=BODY))] += 1
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__] += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


async def rpm_phase(gw: RunningGateway, rate: float, duration_s: float) -> tuple[Counter[str], dict[str, str]]:
    """An open-loop load of ``rate`` req/s for ``duration_s``; the outcomes and the last 200's headers."""
    outcomes: Counter[str] = Counter()
    headers: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=60,
                                 headers={"Authorization": f"Bearer {RPM_KEY}"}) as client:
        async def one() -> None:
            try:
                response = await client.post("/v1/chat/completions", json=BODY)
            except httpx.HTTPError as exc:
                outcomes[type(exc).__name__] += 1
                return
            outcomes[_outcome(response)] += 1
            if response.status_code == 200:
                headers.update({k: v for k, v in response.headers.items() if k.startswith("x-ratelimit")})
        began = time.monotonic()
        tasks = []
        for i in range(int(rate * duration_s)):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return outcomes, headers


def keys_cli(gw: RunningGateway, *args: str) -> dict[str, Any]:
    """``gateway keys ... --json`` against the running gateway, as an operator runs it."""
    out = subprocess.run([sys.executable, "-m", "infra.operator.cli", "keys", *args, "--json"], env=gw.env,
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"gateway keys {' '.join(args)} failed: {out.stderr or out.stdout}")
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


async def revoke_phase(gw: RunningGateway, rate: float, duration_s: float) -> dict[str, Any]:
    """Open-loop load with a bucket key; ``gateway keys revoke`` half-way. Times are in ms from the moment
    the revoke command returned (negative: before)."""
    created = keys_cli(gw, "create", "--tenant", "drill", "--name", "revocation drill", "--models", MODEL)
    secret, key_id = created["secret"], created["id"]
    sent: list[tuple[float, str]] = []
    revoked_at: list[float] = []

    async def revoke() -> None:
        await asyncio.sleep(duration_s / 2)
        await asyncio.to_thread(keys_cli, gw, "revoke", key_id)
        revoked_at.append(time.monotonic())

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=0)  # new connections: every ingress
    async with httpx.AsyncClient(base_url=gw.base_url, timeout=60, limits=limits,
                                 headers={"Authorization": f"Bearer {secret}"}) as client:
        async def one() -> None:
            at = time.monotonic()
            try:
                outcome = _outcome(await client.post("/v1/chat/completions", json=BODY))
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            sent.append((at, outcome))
        revoker = asyncio.create_task(revoke())
        began = time.monotonic()
        tasks = []
        for i in range(int(rate * duration_s)):
            await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks, revoker)
    at = revoked_at[0]
    accepted = [(t - at) * 1000 for t, o in sent if o == "ok"]
    refused = [(t - at) * 1000 for t, o in sent if o.startswith("401")]
    late = [ms for ms in accepted if ms > 1000]
    return {"rate": rate, "seconds": duration_s, "sent": len(sent), "outcomes": dict(Counter(o for _, o in sent)),
            "last_accepted_ms": round(max(accepted), 1) if accepted else None,
            "first_refused_ms": round(min(refused), 1) if refused else None,
            "accepted_after_1s": len(late), "within_1s": not late and bool(refused)}


def accepted_spend(gw: RunningGateway, key_id: str) -> tuple[int, Decimal]:
    rows = gw.wait_rows(f"SELECT count() AS n, toString(sum(cost_usd)) AS spend FROM requests FINAL "
                        f"WHERE api_key_id = '{key_id}' AND status_code = 200", lambda r: bool(r), timeout_s=30)
    return int(rows[0]["n"]), Decimal(rows[0]["spend"] or "0")


async def drill(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from infra.nats_server import free_port

    mock_port = free_port()
    config = drill_config(mock_port, args.budget_usd, args.rpm)
    max_cost = max_cost_nusd(config)
    gw = start_gateway(root, config, replicas=args.replicas, layout="split")
    try:
        figures: dict[str, Any] = {"replicas": args.replicas, "max_cost_usd": nusd_to_usd(max_cost)}
        outcomes = await budget_phase(gw, args.concurrency, args.budget_s)
        await asyncio.sleep(2.0)  # settlement of the last records
        ok, spend = accepted_spend(gw, "drill-budget")
        entry = await ledger_entry(gw, "key.drill-budget")
        budget = usd_to_nusd(args.budget_usd)
        spend_nusd = usd_to_nusd(spend)
        figures["budget"] = {
            "budget_usd": args.budget_usd, "concurrency": args.concurrency, "outcomes": dict(outcomes),
            "accepted": ok, "accepted_spend_usd": str(spend), "ledger_spent_usd": nusd_to_usd(entry.spent_nusd),
            "ledger_holds_left": len(entry.holds), "bound_usd": nusd_to_usd(budget + max_cost),
            "within_bound": spend_nusd <= budget + max_cost and entry.spent_nusd <= budget + max_cost,
            "ledger_matches_rows": entry.spent_nusd == spend_nusd,
        }
        if args.rpm_s > 0:
            outcomes, headers = await rpm_phase(gw, args.rate, args.rpm_s)
            accepted = outcomes.get("ok", 0)
            figures["rpm"] = {
                "rpm": args.rpm, "rate": args.rate, "seconds": args.rpm_s, "sent": sum(outcomes.values()),
                "outcomes": dict(outcomes), "accepted": accepted,
                "within_5pct": abs(accepted - args.rpm) <= 0.05 * args.rpm, "last_headers": headers,
            }
        if args.revoke_s > 0:
            figures["revoke"] = await revoke_phase(gw, args.revoke_rate, args.revoke_s)
        return figures
    finally:
        gw.stop()


def report(figures: dict[str, Any]) -> bool:
    b = figures["budget"]
    print(f"policy replicas: {figures['replicas']}; one request's maximum cost: {figures['max_cost_usd']} USD")
    print(f"(a) budget {b['budget_usd']} USD, {b['concurrency']} concurrent clients: outcomes {b['outcomes']}")
    print(f"    accepted {b['accepted']}, their spend {b['accepted_spend_usd']} USD (ClickHouse), ledger "
          f"{b['ledger_spent_usd']} USD, holds left {b['ledger_holds_left']}; bound {b['bound_usd']} USD: "
          f"{'OK' if b['within_bound'] else 'EXCEEDED'}; ledger = rows: {b['ledger_matches_rows']}")
    good = bool(b["within_bound"])
    r = figures.get("rpm")
    if r is not None:
        print(f"(b) {r['rpm']} RPM, open loop {r['rate']} req/s for {r['seconds']} s ({r['sent']} sent): "
              f"accepted {r['accepted']} ({'OK' if r['within_5pct'] else 'OFF'} within ±5 %), outcomes {r['outcomes']}")
        print(f"    headers of the last accepted answer: {r['last_headers']}")
        good = good and bool(r["within_5pct"])
    v = figures.get("revoke")
    if v is not None:
        print(f"(c) revocation under {v['rate']} req/s for {v['seconds']} s ({v['sent']} sent): "
              f"outcomes {v['outcomes']}")
        print(f"    from the moment `gateway keys revoke` returned: last accepted request sent at "
              f"{v['last_accepted_ms']} ms, first refused at {v['first_refused_ms']} ms; accepted more than 1 s "
              f"after: {v['accepted_after_1s']} ({'OK' if v['within_1s'] else 'LATE'})")
        good = good and bool(v["within_1s"])
    return good


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", action="append", default=None, help="NAME=N for gateway up (policy=4)")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--budget-usd", default="0.0012")
    parser.add_argument("--budget-s", type=float, default=12.0)
    parser.add_argument("--rpm", type=int, default=120)
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--rpm-s", type=float, default=60.0)
    parser.add_argument("--revoke-rate", type=float, default=50.0)
    parser.add_argument("--revoke-s", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.replicas = args.replicas or ["policy=4", "ingress=2"]
    with tempfile.TemporaryDirectory(prefix="gw-gov-") as tmp:
        figures = asyncio.run(drill(args, Path(tmp)))
    good = report(figures)
    if args.json:
        print(json.dumps(figures))
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
