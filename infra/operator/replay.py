"""``gateway replay REQUEST_ID [--config FILE] [--dry-run] [--json]``: a logged request again, old and new
side by side.

- **Live** (default): the request's redacted body is resent through today's chain by the gateway's HTTP
  endpoint (``--url``, else ``GATEWAY_URL``, else the local gateway) with an API key the operator gives
  (``--key``/``--api-key``, else ``GATEWAY_API_KEY``, else ``OPENAI_API_KEY``), tagged ``replay_of``
  (``replay_request.py``); once the new row has landed, the two rows are printed side by side (route,
  plan, status, attempts, tokens, cost, latency, the new request id).
- **Dry run** (``--dry-run``): the route is planned with the routing stage's own logic against today's
  active config (``GW_CONFIG``) or a candidate file (``--config``, validated by the loader the gateway
  uses: an error names the bad path), with today's breaker states when readable; no provider is called
  and nothing is sent to the chain (``replay_plan.py``).
- **A candidate config live** is refused: every worker of a gateway runs the active config, so running
  the chain under another one means applying it, to all traffic. A replay must not change what other
  clients get; plan it with ``--dry-run --config FILE``, or apply it to a staging gateway and replay
  there (its ``--url``, its NATS).

The logged row is read as ``gateway sql`` reads (``replay_record.py``). Exit codes: 0 the comparison was
printed (whatever the replay's own status: it is in the output), 1 the request cannot be replayed or a
step failed (the message says what to do), 2 invalid input (nothing read or sent).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from infra.bootstrap import check_config, load_config
from infra.config import ConfigError, config_version
from infra.operator.batch_client import resolve_api_key, resolve_base_url
from infra.operator.replay_breakers import read_breakers
from infra.operator.replay_record import (
    LoggedRequest,
    ReplayRefused,
    check_replayable,
    fetch_logged,
    fetch_old_plan,
    find_logged,
    parse_request_id,
)
from infra.settings import Settings
from schemas.config import GatewayConfig

CANDIDATE_LIVE_REFUSED = (
    "a live replay runs through the gateway's chain, and every worker of the chain runs the active config "
    "(GW_CONFIG): running it under --config FILE would mean applying that file to all traffic. Plan the "
    "request against the file with `gateway replay ID --dry-run --config FILE`, or apply the file to a "
    "staging gateway (`gateway config apply` there) and replay live against it (--url, NATS_URL)"
)
POLL_S = 0.3


@dataclass(frozen=True)
class ReplayOptions:
    request_id: str
    dry_run: bool
    config: Path | None
    base_url: str
    api_key: str | None
    as_json: bool
    timeout_s: float
    wait_s: float


async def active_config(settings: Settings, nats_url: str) -> tuple[GatewayConfig, str, str, dict[str, str] | None]:
    """Today's active config (parsed as the workers parse it), its version and source, and the breaker
    states; ``ReplayRefused`` when it cannot be read."""
    from infra.config_store import fetch_active
    from infra.operator.sql_client import connect_once, control_credentials

    try:
        nc = await connect_once(nats_url, control_credentials(settings))
    except ConnectionError as exc:
        raise ReplayRefused(f"cannot read the active config: {exc}; or plan against a file with --config FILE") \
            from None
    try:
        js = nc.jetstream()
        try:
            active = await fetch_active(js)
        except ConfigError as exc:
            raise ReplayRefused(f"the active config cannot be read: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - not permitted (analyst), a timeout: say so, and what to do
            raise ReplayRefused(f"cannot read the active config from {nats_url} ({type(exc).__name__}: {exc}); "
                                "the credentials must be admin's or an operator's (`gateway whoami`), or plan "
                                "against a file with --config FILE") from None
        if active is None:
            raise ReplayRefused("no config is active yet (has the gateway ever started?); plan against a file "
                                "with --config FILE")
        try:
            config = active.parse(check_config)
        except ConfigError as exc:  # valid when applied, not to this CLI's code (another version of it?)
            raise ReplayRefused(f"the active config does not load here: {exc}") from None
        return config, active.version, active.source, await read_breakers(js)
    finally:
        await nc.close()


async def breakers_if_reachable(settings: Settings, nats_url: str) -> dict[str, str] | None:
    """Today's breaker states for a candidate config's plan; ``None`` when no gateway is reachable."""
    from infra.operator.sql_client import connect_once, control_credentials

    try:
        nc = await connect_once(nats_url, control_credentials(settings))
    except ConnectionError:
        return None
    try:
        return await read_breakers(nc.jetstream())
    finally:
        await nc.close()


async def dry_run(settings: Settings, opts: ReplayOptions, candidate: GatewayConfig | None) -> tuple[str, Any]:
    """The plan under the candidate or the active config, as (text, JSON)."""
    from infra.operator.replay_plan import plan_route  # the routing stage's logic: loaded only when planning
    from infra.operator.replay_view import planned_json, render_dry, row_json

    logged = await fetch_logged(settings, opts.request_id)
    check_replayable(logged)
    old_plan = await fetch_old_plan(settings, logged.request_id)
    nats_url = settings.nats_url or f"nats://127.0.0.1:{settings.nats_port}"
    if candidate is not None and opts.config is not None:
        config, version, source = candidate, config_version(opts.config), f"file:{opts.config}"
        breakers = await breakers_if_reachable(settings, nats_url)
    else:
        config, version, source, breakers = await active_config(settings, nats_url)
    planned = plan_route(config, logged, version=version, source=source, breakers=breakers)
    document = {"mode": "dry_run", "original": row_json(logged, old_plan), "planned": planned_json(planned),
                "notes": planned.notes}
    return render_dry(logged, old_plan, planned), document


async def live(settings: Settings, opts: ReplayOptions) -> tuple[str, Any]:
    """Resend through today's chain, wait for the new row, compare."""
    from infra.operator.replay_request import replay_call, send_replay
    from infra.operator.replay_view import render_live, row_json

    assert opts.api_key is not None
    logged = await fetch_logged(settings, opts.request_id)
    check_replayable(logged)
    call = replay_call(logged, opts.api_key)
    old_plan = await fetch_old_plan(settings, logged.request_id)
    answer = await send_replay(opts.base_url, call, opts.timeout_s)
    if not answer.request_id:
        raise ReplayRefused(f"the gateway at {opts.base_url} answered {answer.status} without a request id "
                            f"({answer.error or 'no error body'}): is --url the gateway?")
    new = await wait_for_row(settings, answer.request_id, opts.wait_s)
    if new is None:
        raise ReplayRefused(f"the replay was answered {answer.status} as request {answer.request_id}, but its row "
                            f"has not landed within {opts.wait_s:g}s (is the sink running? see its log); compare "
                            f"later with `gateway sql \"SELECT * FROM requests WHERE tags['replay_of'] = "
                            f"'{logged.request_id}'\"`")
    new_plan = await fetch_old_plan(settings, new.request_id)
    notes = [n for n in (_key_note(logged, new), f"the gateway answered: {answer.error}" if answer.error else "")
             if n]
    document = {"mode": "live", "original": row_json(logged, old_plan), "replay": row_json(new, new_plan),
                "http_status": answer.status, "notes": notes}
    return render_live(logged, old_plan, new, new_plan, notes), document


def _key_note(old: LoggedRequest, new: LoggedRequest) -> str:
    if (old.tenant, old.api_key_id) == (new.tenant, new.api_key_id):
        return ""
    return (f"the replay ran as key '{new.api_key_id}' (tenant '{new.tenant}'), the original as "
            f"'{old.api_key_id}' ('{old.tenant}'): policies, budgets and routing conditions on key or tenant "
            "may differ; replay with the original's key for a like-for-like run")


async def wait_for_row(settings: Settings, request_id: str, wait_s: float) -> LoggedRequest | None:
    """The new request's row once the sink has written it (it batches inserts), or None after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        row = await find_logged(settings, request_id)
        if row is not None or time.monotonic() >= deadline:
            return row
        await asyncio.sleep(POLL_S)


def options_of(args: argparse.Namespace) -> ReplayOptions:
    """The parsed options, or ``SystemExit(2)``-worthy ``ValueError`` with what is wrong."""
    if args.config and not args.dry_run:
        raise ValueError(f"--config without --dry-run is refused: {CANDIDATE_LIVE_REFUSED}")
    api_key = None if args.dry_run else resolve_api_key(args.api_key)
    if not args.dry_run and not api_key:
        raise ValueError("a live replay needs a gateway API key: --key KEY, or GATEWAY_API_KEY (the replay is "
                         "billed and governed as that key's request); --dry-run needs none")
    return ReplayOptions(request_id=parse_request_id(args.request_id), dry_run=args.dry_run,
                         config=Path(args.config) if args.config else None, base_url=resolve_base_url(args.url),
                         api_key=api_key, as_json=args.json, timeout_s=args.timeout, wait_s=args.wait)


def cmd_replay(args: argparse.Namespace) -> int:
    try:
        opts = options_of(args)
        candidate = load_config(opts.config) if opts.config is not None else None
    except (ValueError, ReplayRefused, ConfigError) as exc:
        print(f"gateway replay: {exc}", file=sys.stderr)
        return 2
    settings = Settings()
    try:
        text, document = asyncio.run(dry_run(settings, opts, candidate) if opts.dry_run else live(settings, opts))
    except ReplayRefused as exc:
        print(f"gateway replay: {exc}", file=sys.stderr)
        return 1
    print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() if opts.as_json else text)
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("replay", help="resend a logged request (its redacted body) through today's chain, or plan "
                                      "its route (--dry-run), and compare with the original")
    p.add_argument("request_id", help="the request's id (requests.request_id, the x-gateway-request-id header)")
    p.add_argument("--dry-run", action="store_true", help="plan the route only: no provider is called")
    p.add_argument("--config", help="plan against this candidate config file instead of the active one "
                                    "(with --dry-run only)")
    p.add_argument("--key", "--api-key", dest="api_key",
                   help="the gateway API key a live replay runs as (default: $GATEWAY_API_KEY, else $OPENAI_API_KEY)")
    p.add_argument("--url", help="the gateway (default: $GATEWAY_URL, else http://127.0.0.1:<GATEWAY_PORT>)")
    p.add_argument("--json", action="store_true", help="the comparison as JSON")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the gateway's answer")
    p.add_argument("--wait", type=float, default=30.0, help="seconds to wait for the replay's row to land")
    p.set_defaults(func=cmd_replay)
