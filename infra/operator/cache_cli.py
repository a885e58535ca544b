"""``gateway cache stats`` and ``gateway cache purge [--tenant T] [--alias A]``: the response cache's bucket
(``GW_CACHE``, ``stages/cache.py``) on a running gateway's NATS, found as ``gateway sql`` finds it
(``--nats-url``, else ``NATS_URL``, else the embedded one on ``GATEWAY_NATS_PORT``), as the operator's
identity. ``stats`` counts entries and bytes (in all, and by tenant and alias: every key is read, never a
value) and, when the sink answers, the last day's hits and misses from ``requests``. ``--json`` prints the
machine-readable answer. Exit codes: 0 done, 1 the gateway could not be reached, 2 invalid input.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nats.js.errors import NoKeysError

from infra.settings import Settings
from schemas import subjects
from schemas.cache import belongs

if TYPE_CHECKING:
    from nats.aio.client import Client as NatsClient

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]

HITS_SQL = ("SELECT cache, count() AS requests, sum(cache_saved_usd) AS saved_usd FROM requests "
            "WHERE ts > now() - INTERVAL 1 DAY AND cache != '' GROUP BY cache ORDER BY cache")


def _name(token: str) -> str:
    """A key token back to the tenant or alias it encodes (``stages/cache.py`` ``_token``)."""
    if token == "_":
        return ""
    padded = token.upper() + "=" * (-len(token) % 8)
    try:
        return base64.b32decode(padded).decode()
    except (ValueError, UnicodeDecodeError):
        return token


async def _keys(nc: NatsClient, bucket: str = subjects.BUCKET_CACHE) -> list[str]:
    kv = await nc.jetstream().key_value(bucket)
    try:
        return list(await kv.keys())
    except NoKeysError:
        return []


async def stats(nc: NatsClient) -> dict[str, Any]:
    info = await nc.jetstream().stream_info(subjects.kv_stream(subjects.BUCKET_CACHE))
    by = Counter(tuple(key.split(".")[:2]) for key in await _keys(nc))
    out: dict[str, Any] = {
        "entries": info.state.messages, "bytes": info.state.bytes, "max_bytes": info.config.max_bytes,
        "max_age_s": info.config.max_age,
        "by_tenant_alias": [{"tenant": _name(t), "alias": _name(a), "entries": n} for (t, a), n in by.most_common()],
    }
    index = await nc.jetstream().stream_info(subjects.kv_stream(subjects.BUCKET_CACHE_INDEX))
    out["semantic_index"] = {"records": index.state.messages, "bytes": index.state.bytes,
                             "max_bytes": index.config.max_bytes}
    try:
        from infra.sink_query import ask_sink

        answer = await ask_sink(nc, HITS_SQL, timeout_s=10.0)
        out["last_day"] = [dict(zip(answer["columns"], row, strict=True)) for row in answer["rows"]]
    except Exception as exc:  # noqa: BLE001 - the bucket's figures stand without the sink's
        out["last_day_error"] = str(exc)
    return out


async def purge(nc: NatsClient, tenant: str | None, alias: str | None) -> dict[str, Any]:
    """Answers and their semantic index records (purged record by record when a tenant or an alias is
    given, so every provider replica's watch drops them from memory at once; a whole-bucket purge leaves
    the replicas' copies, whose answers are gone: a lookup finds no answer and drops the record)."""
    purged = 0
    for bucket in (subjects.BUCKET_CACHE, subjects.BUCKET_CACHE_INDEX):
        kv = await nc.jetstream().key_value(bucket)
        if tenant is None and alias is None:
            await nc.jetstream().purge_stream(subjects.kv_stream(bucket))
            continue
        keys = [key for key in await _keys(nc, bucket) if belongs(key, tenant, alias)]
        for key in keys:
            await kv.purge(key)
        purged += len(keys) if bucket == subjects.BUCKET_CACHE else 0
    if tenant is None and alias is None:
        return {"purged": "all"}
    return {"purged": purged, "tenant": tenant, "alias": alias}


def _run(args: argparse.Namespace, name: str, work: Callable[[NatsClient], Awaitable[dict[str, Any]]],
         render: Callable[[dict[str, Any]], None]) -> int:
    from infra.nats_identity import IdentityError
    from infra.operator.sql_client import control_identity, control_nats_url, with_control_connection

    settings = Settings()
    url = control_nats_url(args.nats_url, settings)
    try:
        creds, _ = control_identity(settings)
    except (IdentityError, ConnectionError) as exc:
        print(f"gateway cache {name}: {exc}", file=sys.stderr)
        return 2

    try:
        result = asyncio.run(with_control_connection(url, creds, work))
    except ConnectionError as exc:
        print(f"gateway cache {name}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - e.g. no cache bucket: a gateway of an earlier version
        print(f"gateway cache {name}: {type(exc).__name__}: {exc} (is the gateway running, and of this version?)",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, default=str, indent=2))
    else:
        render(result)
    return 0


def _render_stats(result: dict[str, Any]) -> None:
    print(f"entries {result['entries']}, {result['bytes']:,} bytes of {result['max_bytes']:,} "
          f"(the oldest are dropped past it); no entry outlives {result['max_age_s'] / 86400:g} days")
    index = result.get("semantic_index")
    if index:
        print(f"semantic index: {index['records']} questions, {index['bytes']:,} bytes of {index['max_bytes']:,}")
    for row in result["by_tenant_alias"][:20]:
        print(f"  {row['tenant'] or '-':<24} {row['alias'] or '-':<24} {row['entries']}")
    for row in result.get("last_day", []):
        saved = f", saved ${float(row['saved_usd'] or 0):.4f}" if row["cache"] == "hit" else ""
        print(f"last 24 h: {row['cache']} {row['requests']}{saved}")
    if "last_day_error" in result:
        print(f"(no hit counts: {result['last_day_error']})")


def cmd_stats(args: argparse.Namespace) -> int:
    return _run(args, "stats", stats, _render_stats)


def cmd_purge(args: argparse.Namespace) -> int:
    return _run(args, "purge", lambda nc: purge(nc, args.tenant, args.alias),
                lambda r: print(f"purged {r['purged']} entries" if r["purged"] != "all" else "purged every entry"))


def add_parsers(sub: Subparsers) -> None:
    p = sub.add_parser("cache", help="the response cache: stats, purge")
    cache = p.add_subparsers(dest="cache_command", required=True)
    shown = cache.add_parser("stats", help="entries and bytes, by tenant and alias; the last day's hits and misses")
    shown.set_defaults(func=cmd_stats)
    purged = cache.add_parser("purge", help="drop cached answers: all, a tenant's, or an alias's")
    purged.add_argument("--tenant", help="only this tenant's entries")
    purged.add_argument("--alias", help="only this model alias's entries (with --tenant: that tenant's)")
    purged.set_defaults(func=cmd_purge)
    for c in (shown, purged):
        c.add_argument("--nats-url", help="default: NATS_URL, else the embedded server on GATEWAY_NATS_PORT")
        c.add_argument("--json", action="store_true", help="print the answer as JSON")
