"""``gateway keys create|list|show|update|revoke|rotate`` and ``gateway budgets set|show``: the
governance admin operations (``infra/governance_admin.py``) against a running gateway's NATS, found as
``gateway sql`` finds it (``--nats-url``, else ``NATS_URL``, else the embedded one on
``GATEWAY_NATS_PORT``), acting as the operator's NATS identity (``infra/nats_identity.py``
``operator_identity``: the audit log's actor). ``--json`` on every command prints the machine-readable
answer; otherwise a short table. Exit codes: 0 done, 1 the gateway refused or could not be reached, 2 invalid input.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from infra.settings import Settings
from schemas.errors import GatewayError
from schemas.governance_admin import BudgetSet, KeyCreate, KeyRotate, KeyUpdate, LevelName

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

    from infra.governance_admin import GovernanceAdmin

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

Work = Callable[["GovernanceAdmin"], Awaitable[Any]]
"""One admin operation; its answer is printed as JSON (``--json``) or rendered."""


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _pairs(values: list[str] | None, flag: str) -> dict[str, str] | None:
    if values is None:
        return None
    out: dict[str, str] = {}
    for value in values:
        name, sep, val = value.partition("=")
        if not sep or not name:
            raise SystemExit(f"gateway: {flag} expects KEY=VALUE, got {value!r}")
        out[name] = val
    return out


def _required_tags(values: list[str] | None) -> dict[str, str | list[str]] | None:
    """``--require-tag K=V`` flags: a tag given twice asks for both values (``compliance=hipaa``,
    ``compliance=soc2``: a provider tagged ``compliance: [hipaa, soc2]``)."""
    if values is None:
        return None
    asked: dict[str, list[str]] = {}
    for one in values:
        for name, value in (_pairs([one], "--require-tag") or {}).items():
            found = asked.setdefault(name, [])
            if value not in found:
                found.append(value)
    return {name: found[0] if len(found) == 1 else found for name, found in asked.items()}


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="seconds")


# -- flags -> request models ------------------------------------------------------------------------

LIMIT_FLAGS = ("rpm", "tpm", "alert_at")
ACCESS_FLAGS = ("max_tokens",)


def _common_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in (*LIMIT_FLAGS, *ACCESS_FLAGS):
        if getattr(args, name, None) is not None:
            fields[name] = getattr(args, name)
    if (tags := _required_tags(getattr(args, "require_tag", None))) is not None:
        fields["require_tags"] = tags
    if getattr(args, "providers", None) is not None:
        fields["providers"] = _csv(args.providers)
    if getattr(args, "allow_unpriced", None) is not None:
        fields["allow_unpriced"] = args.allow_unpriced
    for name in getattr(args, "clear", None) or []:
        fields[name.replace("-", "_")] = None
    return fields


def _key_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields = _common_fields(args)
    for name in ("id", "tenant", "team", "user", "name", "max_input_chars", "budget_usd", "budget_period",
                 "expires", "guardrail_profile", "revision"):
        if getattr(args, name, None) is not None:
            fields[name] = getattr(args, name)
    if getattr(args, "models", None) is not None:
        fields["models"] = _csv(args.models)
    cache = {name: getattr(args, f"cache_{name}", None) for name in ("mode", "ttl_s", "max_entry_bytes", "similarity")}
    if any(value is not None for value in cache.values()):  # the others take their defaults
        fields["cache"] = {name: value for name, value in cache.items() if value is not None}
    if (tags := _pairs(getattr(args, "tag", None), "--tag")) is not None:
        fields["tags"] = tags
    return fields


def _budget_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields = _common_fields(args)
    if args.usd is not None:
        fields["usd"] = args.usd
    if args.period is not None:
        fields["period"] = args.period
    return fields


def _model(model: type[BaseModel], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        flag = "--" + "-".join(str(p) for p in first["loc"]).replace("_", "-")
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInput(f"{flag}: {message}") from None


class InvalidInput(Exception):
    pass


# -- running one operation --------------------------------------------------------------------------


def _run(args: argparse.Namespace, name: str, work: Work, render: Callable[[Any], None]) -> int:
    from infra.config_store import fetch_active
    from infra.governance_admin import ConfigFacts, GovernanceAdmin
    from infra.nats_identity import IdentityError
    from infra.operator.reported_by import reported_by
    from infra.operator.sql_client import control_identity, control_nats_url, with_control_connection

    settings = Settings()
    url = control_nats_url(args.nats_url, settings)
    try:
        creds, me = control_identity(settings)
    except (IdentityError, ConnectionError) as exc:
        print(f"gateway {name}: {exc}", file=sys.stderr)
        return 2

    async def main(nc: NatsClient) -> Any:
        js = nc.jetstream()
        facts = ConfigFacts()
        try:
            active = await fetch_active(js)
            if active is not None:
                # checked when it was applied; only its profile names and key ids are read here
                config = active.parse(check=lambda _config: [])
                facts = ConfigFacts(profiles={"default", *config.guardrail_profiles},
                                    config_key_ids=[k.id for k in config.keys])
        except Exception:  # noqa: BLE001 - no published config: the profile is not checked here
            pass
        return await work(GovernanceAdmin(js, facts, identity=me, reported_by=reported_by()))

    try:
        result = asyncio.run(with_control_connection(url, creds, main))
    except GatewayError as exc:
        where = f" ({exc.param})" if exc.param else ""
        print(f"gateway {name}: {exc.message}{where}", file=sys.stderr)
        return 2 if exc.status_code == 400 else 1
    except ConnectionError as exc:
        print(f"gateway {name}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, default=str, indent=2))
    else:
        render(result)
    return 0


def _guarded(name: str, build: Callable[[], Work], args: argparse.Namespace,
             render: Callable[[Any], None]) -> int:
    try:
        work = build()
    except InvalidInput as exc:
        print(f"gateway {name}: {exc}", file=sys.stderr)
        return 2
    return _run(args, name, work, render)


# -- rendering --------------------------------------------------------------------------------------


def _print_key(view: dict[str, Any]) -> None:
    limits, access = view["limits"], view["access"]
    lines = [
        ("id", view["id"]), ("status", view["status"]), ("tenant", view["tenant"]), ("team", view["team"] or "-"),
        ("user", view["user"] or "-"), ("name", view["name"] or "-"), ("models", ",".join(view["models"])),
        ("guardrail_profile", view["guardrail_profile"] or "-"),
        ("tags", ",".join(f"{k}={v}" for k, v in view["tags"].items()) or "-"),
        ("rpm", limits["rpm"] or "-"), ("tpm", limits["tpm"] or "-"),
        ("budget", f"{limits['budget_usd']} USD/{limits['budget_period']}" if limits["budget_usd"] else "-"),
        ("access", json.dumps(access)), ("expires_at", _when(view["expires_at"])),
        ("revoked_at", _when(view["revoked_at"])), ("secrets", len(view["secrets"])),
        ("revision", view.get("revision", "-")),
    ]
    usage = view.get("usage")
    if usage is not None:
        lines += [("period", usage["period"]), ("spent_usd", usage["spent_usd"]),
                  ("remaining_usd", usage["remaining_usd"] or "-"),
                  ("requests_last_minute", usage["requests_last_minute"]),
                  ("tokens_last_minute", usage["tokens_last_minute"])]
    width = max(len(k) for k, _ in lines)
    for label, value in lines:
        print(f"{label.ljust(width)}  {value}")


def _print_issued(view: dict[str, Any]) -> None:
    print(f"key {view['id']} (tenant {view['tenant']})")
    print(f"secret {view['secret']}")
    print("Store the secret now: it is shown only this once.")


def _print_list(views: list[dict[str, Any]]) -> None:
    from infra.operator.cli import _print_table

    _print_table(["id", "status", "tenant", "team", "name", "models", "expires_at"],
                 [[v["id"], v["status"], v["tenant"], v["team"], v["name"], ",".join(v["models"]),
                   _when(v["expires_at"])] for v in views])


def _print_level(view: dict[str, Any]) -> None:
    limits, usage = view["limits"], view["usage"]
    print(f"{view['kind']} {view['id']}{'' if view['configured'] else ' (no limits set)'}")
    budget = f"{limits['budget_usd']} USD/{limits['budget_period']}" if limits["budget_usd"] else "-"
    print(f"budget {budget}  spent {usage['spent_usd']}  remaining {usage['remaining_usd'] or '-'}  "
          f"period {usage['period']}")
    print(f"rpm {limits['rpm'] or '-'}  tpm {limits['tpm'] or '-'}  alert_at {limits['alert_at'] or '-'}  "
          f"requests/min {usage['requests_last_minute']}  tokens/min {usage['tokens_last_minute']}")
    print(f"access {json.dumps(view['access'])}")


# -- commands ---------------------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> int:
    from infra.governance_admin import key_view

    def build() -> Work:
        req = _model(KeyCreate, _key_fields(args))

        async def work(admin: GovernanceAdmin) -> Any:
            issued = await admin.create_key(req)
            return {**key_view(issued.key, admin.clock(), issued.revision), "secret": issued.secret}
        return work

    return _guarded("keys create", build, args, _print_issued)


def cmd_list(args: argparse.Namespace) -> int:
    from infra.governance_admin import key_view

    async def work(admin: GovernanceAdmin) -> Any:
        now = admin.clock()
        return [key_view(k, now) for k in await admin.list_keys(tenant=args.tenant, team=args.team)]

    return _run(args, "keys list", work, _print_list)


def cmd_show(args: argparse.Namespace) -> int:
    async def work(admin: GovernanceAdmin) -> Any:
        return await admin.show_key(args.key_id)

    return _run(args, "keys show", work, _print_key)


def cmd_update(args: argparse.Namespace) -> int:
    from infra.governance_admin import key_view

    def build() -> Work:
        req = _model(KeyUpdate, _key_fields(args))

        async def work(admin: GovernanceAdmin) -> Any:
            key, revision = await admin.update_key(args.key_id, req)
            return key_view(key, admin.clock(), revision)
        return work

    return _guarded("keys update", build, args, _print_key)


def cmd_revoke(args: argparse.Namespace) -> int:
    from infra.governance_admin import key_view

    async def work(admin: GovernanceAdmin) -> Any:
        key, revision = await admin.revoke_key(args.key_id)
        return key_view(key, admin.clock(), revision)

    return _run(args, "keys revoke", work, lambda v: print(f"key {v['id']} revoked at {_when(v['revoked_at'])}"))


def cmd_rotate(args: argparse.Namespace) -> int:
    from infra.governance_admin import key_view

    def build() -> Work:
        req = _model(KeyRotate, {"grace": args.grace})

        async def work(admin: GovernanceAdmin) -> Any:
            issued = await admin.rotate_key(args.key_id, req)
            return {**key_view(issued.key, admin.clock(), issued.revision), "secret": issued.secret}
        return work

    return _guarded("keys rotate", build, args, _print_issued)


def _level_of(args: argparse.Namespace) -> tuple[LevelName, str]:
    return ("tenant", args.tenant) if args.tenant else ("team", args.team)


def cmd_budgets_set(args: argparse.Namespace) -> int:
    def build() -> Work:
        req = _model(BudgetSet, _budget_fields(args))
        kind, level_id = _level_of(args)

        async def work(admin: GovernanceAdmin) -> Any:
            await admin.set_level(kind, level_id, req)
            return await admin.show_level(kind, level_id)
        return work

    return _guarded("budgets set", build, args, _print_level)


def cmd_budgets_show(args: argparse.Namespace) -> int:
    kind, level_id = _level_of(args)

    async def work(admin: GovernanceAdmin) -> Any:
        return await admin.show_level(kind, level_id)

    return _run(args, "budgets show", work, _print_level)


# -- parsers ----------------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the answer as JSON (for scripts)")
    p.add_argument("--nats-url", help="the gateway's NATS (default: $NATS_URL, else the embedded one)")


def _limit_flags(p: argparse.ArgumentParser, *, update: bool) -> None:
    p.add_argument("--rpm", type=int, help="requests per minute")
    p.add_argument("--tpm", type=int, help="tokens per minute")
    p.add_argument("--alert-at", type=float, help="soft threshold, a fraction of the budget (0.8)")
    p.add_argument("--require-tag", action="append", metavar="K=V",
                   help="every provider a request routes to must carry this tag (repeatable; a tag given "
                        "twice asks for both values)")
    p.add_argument("--providers", help="the provider names allowed, comma-separated")
    p.add_argument("--max-tokens", type=int, help="a cap on a request's max_tokens")
    p.add_argument("--allow-unpriced", action=argparse.BooleanOptionalAction, default=None,
                   help="a budgeted scope may use a model with no known price")
    if update:
        p.add_argument("--clear", action="append", metavar="FIELD",
                       help="remove a limit or rule (rpm, tpm, budget-usd/usd, alert-at, max-tokens, expires, ...)")


def _key_flags(p: argparse.ArgumentParser, *, update: bool) -> None:
    p.add_argument("--tenant", required=not update)
    p.add_argument("--team")
    p.add_argument("--user")
    p.add_argument("--name")
    p.add_argument("--models", help="model aliases the key may use, comma-separated (default: all)")
    p.add_argument("--max-input-chars", type=int)
    p.add_argument("--budget-usd", help="spend allowed per period, in USD")
    p.add_argument("--budget-period", choices=["day", "month", "total"])
    p.add_argument("--expires", help="30d, 12h, 10m, an ISO date, or never")
    p.add_argument("--guardrail-profile", help="a guardrail profile of the live config")
    p.add_argument("--cache-mode", choices=["off", "exact", "semantic"],
                   help="the response cache for the key's requests (wins over the alias's and the config's)")
    p.add_argument("--cache-ttl-s", type=int, help="how long a cached answer may be reused (default 3600)")
    p.add_argument("--cache-max-entry-bytes", type=int, help="answers larger than this are not cached")
    p.add_argument("--cache-similarity", type=float,
                   help="semantic mode: the least judge score of a reworded question (0.5-1.0, default 0.8)")
    p.add_argument("--tag", action="append", metavar="K=V", help="a tag of the key (repeatable)")
    _limit_flags(p, update=update)
    _common(p)


def add_parsers(keys: Subparsers, sub: Subparsers) -> None:
    """Register ``keys <op>`` on the ``keys`` subparsers and ``budgets`` on the top-level ones."""
    k = keys.add_parser("create", help="create a key; prints its secret once")
    k.add_argument("--id", help="the key's id (default: key_ + random)")
    _key_flags(k, update=False)
    k.set_defaults(func=cmd_create)
    k = keys.add_parser("list", help="list keys (never a secret)")
    k.add_argument("--tenant")
    k.add_argument("--team")
    _common(k)
    k.set_defaults(func=cmd_list)
    k = keys.add_parser("show", help="a key's limits, spend and remaining budget, this minute's use")
    k.add_argument("key_id")
    _common(k)
    k.set_defaults(func=cmd_show)
    k = keys.add_parser("update", help="change a key's fields")
    k.add_argument("key_id")
    k.add_argument("--revision", type=int, help="refuse the change if the key moved past this revision")
    _key_flags(k, update=True)
    k.set_defaults(func=cmd_update)
    k = keys.add_parser("revoke", help="revoke a key (every ingress refuses it within a second)")
    k.add_argument("key_id")
    _common(k)
    k.set_defaults(func=cmd_revoke)
    k = keys.add_parser("rotate", help="issue a new secret; the old one works through --grace")
    k.add_argument("key_id")
    k.add_argument("--grace", default="0", help="how long the old secret keeps working (10m; default 0)")
    _common(k)
    k.set_defaults(func=cmd_rotate)

    p = sub.add_parser("budgets", help="team and tenant limits")
    budgets = p.add_subparsers(dest="budgets_command", required=True)
    for op, func, helptext in (("set", cmd_budgets_set, "set a team's or tenant's limits"),
                               ("show", cmd_budgets_show, "a team's or tenant's limits and spend")):
        b = budgets.add_parser(op, help=helptext)
        level = b.add_mutually_exclusive_group(required=True)
        level.add_argument("--tenant")
        level.add_argument("--team")
        if op == "set":
            b.add_argument("--usd", help="spend allowed per period, in USD")
            b.add_argument("--period", choices=["day", "month", "total"])
            _limit_flags(b, update=True)
        _common(b)
        b.set_defaults(func=func)
