"""``gateway operators add NAME | list | remove NAME`` and ``gateway nats-config``: the NATS identities.

An operator is an identity of its own (``op-<NAME>``, admin's permissions) with its own seed file under
``<data_dir>/nats/creds``. Adding or removing one rewrites the embedded nats-server's users file and
reloads the running server (SIGHUP): no restart. With an external ``NATS_URL`` nothing is written there:
``gateway nats-config`` prints the ``authorization`` block to paste into that server's config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from infra import nats_creds
from infra.nats_permissions import is_operator
from infra.nats_server import AUTH_CONF, reload, write_authorization
from infra.nats_users import ensure_identities, operator_identity, users, users_block
from infra.settings import Settings


def _data_dir(args: argparse.Namespace) -> Path:
    return (Path(args.data_dir) if getattr(args, "data_dir", None) else Settings().data_dir).resolve()


def _running_nats_pid(data_dir: Path) -> int | None:
    """The embedded nats-server's PID while ``gateway up`` runs (its ``pids.json``), else None."""
    try:
        pids: dict[str, Any] = json.loads((data_dir / "pids.json").read_text())
    except (OSError, ValueError):
        return None
    pid = pids.get("nats-server")
    return int(pid) if pid else None


def apply_users(data_dir: Path) -> str:
    """Make the embedded server's users file match the seeds; reload the server if it runs. Says what it did."""
    store = data_dir / "nats"
    if Settings().nats_url:
        return ("NATS_URL points at an external server: update its config with `gateway nats-config` "
                "and reload it (nats-server --signal reload)")
    if not (store / "nats-server.conf").exists():
        return "the embedded nats-server has not run here yet: `gateway up` will use the new users"
    write_authorization(store, users_block(data_dir))
    pid = _running_nats_pid(data_dir)
    if pid is None:
        return f"wrote {store / AUTH_CONF}; `gateway up` is not running: the next start uses it"
    try:
        reload(pid)
    except ProcessLookupError:
        return f"wrote {store / AUTH_CONF}; nats-server (pid {pid}) is gone: the next start uses it"
    return f"wrote {store / AUTH_CONF} and reloaded nats-server (pid {pid}): no restart needed"


def cmd_add(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    try:
        identity = operator_identity(args.name)
    except ValueError as exc:
        print(f"gateway operators add: {exc}", file=sys.stderr)
        return 2
    path = nats_creds.seed_path(data_dir, identity)
    if not nats_creds.write_seed(path):
        print(f"gateway operators add: {identity} exists ({path}); `gateway operators remove {args.name}` first "
              "to replace its credentials", file=sys.stderr)
        return 1
    print(f"operator {identity}: credentials in {path} (mode 0600; give this file to the operator alone)")
    print(apply_users(data_dir))
    print(f"use it: GATEWAY_NATS_CREDS={path} gateway keys list")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    try:
        identity = operator_identity(args.name)
    except ValueError as exc:
        print(f"gateway operators remove: {exc}", file=sys.stderr)
        return 2
    if not nats_creds.remove(nats_creds.seed_path(data_dir, identity)):
        print(f"gateway operators remove: no operator {args.name!r} (see `gateway operators list`)", file=sys.stderr)
        return 1
    print(f"operator {identity} removed")
    print(apply_users(data_dir))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    found = {identity: path for identity, path in users(_data_dir(args)).items() if is_operator(identity)}
    if not found:
        print("no operators (add one: gateway operators add NAME)")
    for identity, path in found.items():
        print(f"{identity}\t{nats_creds.public_key(path)}\t{path}")
    return 0


def cmd_nats_config(args: argparse.Namespace) -> int:
    """Print the users block for an external nats-server (seeds generated here on first use)."""
    data_dir = _data_dir(args)
    ensure_identities(data_dir)
    print(f"# nats-server users for the gateway whose data dir is {data_dir}: paste into the server's config.\n"
          f"# Each process authenticates with its seed under {nats_creds.creds_dir(data_dir)}.")
    print(users_block(data_dir), end="")
    return 0


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("operators", help="operators' NATS identities (admin's permissions, their own credentials)")
    ops = p.add_subparsers(dest="operators_command", required=True)
    o = ops.add_parser("add", help="create an operator's credentials and let the running NATS accept them")
    o.add_argument("name")
    o.set_defaults(func=cmd_add)
    o = ops.add_parser("list", help="the operators and their credentials files")
    o.set_defaults(func=cmd_list)
    o = ops.add_parser("remove", help="delete an operator's credentials; NATS refuses them at once")
    o.add_argument("name")
    o.set_defaults(func=cmd_remove)
    for o in ops.choices.values():
        o.add_argument("--data-dir", help="the gateway's data dir (default: $GATEWAY_DATA_DIR or .gateway)")

    p = sub.add_parser("nats-config", help="print the NATS users and permissions block for an external server")
    p.add_argument("--data-dir", help="the gateway's data dir (default: $GATEWAY_DATA_DIR or .gateway)")
    p.set_defaults(func=cmd_nats_config)
