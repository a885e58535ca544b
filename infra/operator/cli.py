"""The ``gateway`` command: up, sql, mock-provider, keys, budgets, config, audit, whoami, replay, cache."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from infra.bootstrap import check_config, load_config, parse_config_text
from infra.config import ConfigError
from infra.nats_identity import IdentityError, operator_creds, operator_identity
from infra.operator.audit_cli import add_parsers as add_audit_parsers
from infra.operator.batch_cli import add_parsers as add_batch_parsers
from infra.operator.cache_cli import add_parsers as add_cache_parsers
from infra.operator.keys_cli import add_parsers as add_governance_parsers
from infra.operator.nats_cli import add_parsers as add_nats_parsers
from infra.operator.replay import add_parsers as add_replay_parsers
from infra.operator.reported_by import reported_by
from infra.settings import Settings
from schemas.audit_actor import nats_actor
from schemas.config import hash_api_key
from schemas.events import ControlAttrs
from schemas.secret_refs import referenced_secrets

if TYPE_CHECKING:
    from nats.js import JetStreamContext

T = TypeVar("T")


def _replicas(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        name, _, count = value.partition("=")
        if not count.isdigit() or int(count) < 1:
            raise SystemExit(f"--replicas expects STAGE=N with N >= 1, got {value!r}")
        out[name] = int(count)
    return out


def cmd_up(args: argparse.Namespace) -> int:
    from infra.child_env import LANE_STAGES, STAGES
    from infra.operator.supervisor import up

    overrides: dict[str, Any] = {}
    if args.config:
        overrides["config"] = Path(args.config)
    if args.port:
        overrides["port"] = args.port
    settings = Settings(**overrides)
    try:
        load_config(settings.config)
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    replicas = _replicas(args.replicas or [])
    known = ({"ingress", "stages", "lane", "batch"} if args.layout == "hosted"
             else {"ingress", "batch", *STAGES, *LANE_STAGES})
    unknown = sorted(set(replicas) - known)
    if unknown:
        print(f"gateway: --replicas {', '.join(unknown)}: the {args.layout} layout has {', '.join(sorted(known))}",
              file=sys.stderr)
        return 2
    return up(settings, replicas, args.layout)


def cmd_mock_provider(args: argparse.Namespace) -> int:
    from infra.doubles.mock_provider.server import run

    run(host=args.host, port=args.port)
    return 0


def cmd_keys_hash(args: argparse.Namespace) -> int:
    print(hash_api_key(args.key))
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    path = Path(args.path) if args.path else Settings().config
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: ok ({len(config.keys)} keys, {len(config.providers)} providers, {len(config.models)} models)")
    for stage, names in sorted(referenced_secrets(config).items()):
        missing = sorted(name for name in names if not os.environ.get(name))
        if missing:  # only a note: the check may run where the secrets are not (CI)
            print(f"gateway: not set in this environment: {', '.join(missing)} (referenced for the {stage} "
                  "stage; `gateway up` must start with them)", file=sys.stderr)
    return 0


def _control_nats_url(args: argparse.Namespace, settings: Settings) -> str:
    from infra.operator.sql_client import control_nats_url

    return control_nats_url(args.nats_url, settings)


async def _with_js(url: str, settings: Settings, work: Callable[[JetStreamContext], Awaitable[T]],
                   creds: Path | None = None) -> T:
    """Run ``work`` on a control connection as ``creds`` (default: the CLI's, ``sql_client.control_credentials``)."""
    from infra.operator.sql_client import control_credentials, with_control_connection

    return await with_control_connection(url, creds if creds is not None else control_credentials(settings),
                                         lambda nc: work(nc.jetstream()))


def cmd_config_apply(args: argparse.Namespace) -> int:
    """Validate locally, then make the file the active config of every worker (hot reload)."""
    from infra.config_store import publish_config

    settings = Settings()
    path = (Path(args.path) if args.path else settings.config).resolve()
    try:
        text = path.read_text()
    except OSError as exc:
        print(f"gateway: cannot read config file {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        parse_config_text(text, str(path))
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    url = _control_nats_url(args, settings)
    from infra.operator.sql_client import control_identity

    try:
        creds, me = control_identity(settings)
    except (IdentityError, ConnectionError) as exc:
        print(f"gateway config apply: {exc}", file=sys.stderr)
        return 2

    async def work(js: JetStreamContext) -> str:
        return await publish_config(js, text, f"apply:{nats_actor(me)}", check=check_config, identity=me,
                                    label=str(path), attrs=ControlAttrs(file=str(path)), reported_by=reported_by())

    try:
        version = asyncio.run(_with_js(url, settings, work, creds))
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - NATS unreachable, no bucket (gateway never started): say so
        print(f"gateway config apply: {exc}", file=sys.stderr)
        return 1
    print(f"applied config {version} from {path}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    import datetime

    from infra.config_store import fetch_active

    settings = Settings()
    try:
        active = asyncio.run(_with_js(_control_nats_url(args, settings), settings, fetch_active))
    except Exception as exc:  # noqa: BLE001 - NATS unreachable, no bucket, a stored value that is no config: say so
        print(f"gateway config show: {exc}", file=sys.stderr)
        return 1
    if active is None:
        print("gateway config show: no config published yet", file=sys.stderr)
        return 1
    applied = datetime.datetime.fromtimestamp(active.applied_at, datetime.UTC).isoformat(timespec="seconds")
    print(f"version {active.version}\nsource {active.source}\napplied_at {applied}\nrevision {active.revision}")
    if args.yaml:
        print(f"---\n{active.yaml}", end="" if active.yaml.endswith("\n") else "\n")
    return 0


def _print_table(columns: list[str], rows: list[list[Any]]) -> None:
    cells = [[("NULL" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")


def cmd_sql(args: argparse.Namespace) -> int:
    from infra.operator.sql_client import SqlError, run_query

    settings = Settings()
    try:
        result = asyncio.run(run_query(settings, args.query, timeout_s=args.timeout))
    except SqlError as exc:
        print(f"gateway sql: {exc} ({_ran_as(settings)})", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(result, default=str))
    else:
        _print_table(result["columns"], result["rows"])
    return 0


def _ran_as(settings: Settings) -> str:
    """Who ``gateway sql`` ran as, for its error messages (never raises): the NATS identity, or the
    ClickHouse user of ``CLICKHOUSE_URL`` when it queries a server directly."""
    if settings.clickhouse_url:
        return "ran as the user in CLICKHOUSE_URL"
    try:
        who = nats_actor(operator_identity(settings))
    except IdentityError:
        who = f"no valid identity: GATEWAY_NATS_CREDS={settings.nats_creds}"
    return f"ran as {who}; `gateway whoami` checks its credentials"


def cmd_whoami(args: argparse.Namespace) -> int:
    """The NATS identity operator commands act as (recorded as the actor of their audit entries), and
    whether its seed file can be read. Exit 0: readable; 1: not (missing or unreadable); 2: no identity."""
    settings = Settings()
    path = operator_creds(settings).resolve()
    try:
        actor = nats_actor(operator_identity(settings))
    except IdentityError as exc:
        print(f"gateway whoami: {exc}", file=sys.stderr)
        return 2
    readable = path.is_file() and os.access(path, os.R_OK)
    source = "GATEWAY_NATS_CREDS" if settings.nats_creds is not None else "the data directory's default"
    if args.json:
        print(json.dumps({"actor": actor, "creds": str(path), "source": source, "readable": readable,
                          "reported_by": reported_by()}))
    else:
        print(f"{actor}\ncreds {path} ({source}): {'readable' if readable else 'NOT readable'}\n"
              f"reported_by {reported_by()} (unauthenticated; kept in audit details only)")
    if not readable:
        why = "it does not exist" if not path.exists() else "this user cannot read it"
        print(f"gateway whoami: {path}: {why}. `gateway up` creates the admin credentials under "
              "<data_dir>/nats/creds/ at first start (set GATEWAY_DATA_DIR to that gateway's); an operator "
              "of their own gets one with `gateway operators add NAME` and sets GATEWAY_NATS_CREDS to it.",
              file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start the whole gateway (embedded NATS and ClickHouse by default)")
    p.add_argument("--config", help="config file (default: $GATEWAY_CONFIG or config/gateway.yaml)")
    p.add_argument("--port", type=int, help="ingress port (default 8080)")
    p.add_argument("--layout", choices=["hosted", "split"], default="hosted",
                   help="hosted (default): every stage in each of the stage processes; split: a process per stage")
    p.add_argument("--replicas", action="append", metavar="NAME=N",
                   help="processes of a kind: stages=N, ingress=N (default 2 each), lane=N (the batch lane's "
                        "stage hosts), batch=N (batch drivers; default 1 each); with --layout split, one stage, "
                        "e.g. output_filter=3, or one stage of the batch lane, e.g. provider_lane=2")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("sql", help="read-only SQL against the analytics store")
    p.add_argument("query")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("mock-provider", help="serve the mock OpenAI/Anthropic/Gemini provider")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8090)
    p.set_defaults(func=cmd_mock_provider)

    p = sub.add_parser("keys", help="gateway API keys")
    keys = p.add_subparsers(dest="keys_command", required=True)
    k = keys.add_parser("hash", help="print the key_sha256 to put in the config for a key")
    k.add_argument("key")
    k.set_defaults(func=cmd_keys_hash)
    add_governance_parsers(keys, sub)

    p = sub.add_parser("config", help="config file")
    cfg = p.add_subparsers(dest="config_command", required=True)
    c = cfg.add_parser("check", help="validate a config file")
    c.add_argument("path", nargs="?")
    c.set_defaults(func=cmd_config_check)
    c = cfg.add_parser("apply", help="validate a config file and make it active in every worker (no restart)")
    c.add_argument("path", nargs="?", help="config file (default: $GATEWAY_CONFIG or config/gateway.yaml)")
    c.add_argument("--nats-url", help="the gateway's NATS (default: $NATS_URL, else the embedded one)")
    c.set_defaults(func=cmd_config_apply)
    c = cfg.add_parser("show", help="print the active config version and where it came from")
    c.add_argument("--nats-url", help="the gateway's NATS (default: $NATS_URL, else the embedded one)")
    c.add_argument("--yaml", action="store_true", help="print the active YAML too")
    c.set_defaults(func=cmd_config_show)
    add_audit_parsers(sub)

    p = sub.add_parser("whoami", help="the NATS identity operator commands act as (the audit log's actor), and "
                                      "whether its credentials file is readable")
    p.add_argument("--json", action="store_true", help="the answer as JSON")
    p.set_defaults(func=cmd_whoami)
    add_nats_parsers(sub)
    add_batch_parsers(sub)
    add_replay_parsers(sub)
    add_cache_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
