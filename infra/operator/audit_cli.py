"""``gateway audit verify [--since SEQ|ISO-TIME] [--json]``: recompute the audit chain.

The rows of ``audit_log`` are read the way ``gateway sql`` reads (through the sink for the embedded
store, or ``CLICKHOUSE_URL``), page by page in seq order, with the latest anchor from
``gateway_events``; ``schemas/audit_verify.py`` recomputes every hash and link. Exit 0: intact; 1: the
chain is broken (the first problem named by its seq, then every other one); 2: the rows could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from typing import Any

from infra.operator.sql_client import SqlError, run_query
from infra.settings import Settings
from schemas.audit import AuditRow
from schemas.audit_verify import Anchor, Report, verify

PAGE_SEQS = 2_000
"""Seqs per query (the sink answers at most 10,000 rows; duplicated seqs leave room)."""
COLUMNS = ("seq, toUnixTimestamp64Milli(ts) AS ts_ms, kind, actor, subject, action, detail, entry_id, "
           "prev_hash, hash")
NEXT_STEPS = (
    "What to do: do not trust rows from the first problem on. Compare the chain with the anchors the sink "
    "wrote (its log: grep 'audit anchor' .gateway/logs/sink.log; and SELECT ts, subject, to_state FROM "
    "gateway_events WHERE kind = 'audit_anchor'), find who could write to the store around that time, and "
    "restore audit_log from a backup; the entries themselves stay in the GW_AUDIT stream for 30 days."
)


def parse_since(text: str) -> tuple[str, int]:
    """``("seq", n)`` for digits, else ``("ms", epoch_ms)`` for an ISO-8601 time (UTC unless it says);
    ``ValueError`` for anything else."""
    if text.isdigit():
        return "seq", int(text)
    when = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return "ms", round(when.timestamp() * 1000)


async def _query(settings: Settings, sql: str) -> list[list[Any]]:
    result = await run_query(settings, sql)
    rows: list[list[Any]] = result["rows"]
    return rows


async def load(settings: Settings, since: tuple[str, int] | None) -> tuple[list[AuditRow], Anchor | None]:
    """The rows from ``since`` on (all without it), in seq order, and the latest anchor."""
    where = ""
    if since is not None:
        kind, value = since
        where = f"WHERE seq >= {value}" if kind == "seq" else f"WHERE ts >= fromUnixTimestamp64Milli({value})"
    bounds = await _query(settings, f"SELECT min(seq), max(seq), count() FROM audit_log {where}")
    first, last, count = bounds[0] if bounds else (0, 0, 0)
    rows: list[AuditRow] = []
    if count:
        start = int(first)
        while start <= int(last):
            page = await _query(settings, f"SELECT {COLUMNS} FROM audit_log WHERE seq BETWEEN {start} AND "
                                          f"{start + PAGE_SEQS - 1} ORDER BY seq, hash")
            rows.extend(AuditRow(seq=int(r[0]), ts_ms=int(r[1]), kind=str(r[2]), actor=str(r[3]),
                                 subject=str(r[4]), action=str(r[5]), detail=str(r[6]), entry_id=str(r[7]),
                                 prev_hash=str(r[8]), hash=str(r[9])) for r in page)
            start += PAGE_SEQS
    found = await _query(settings, "SELECT toUInt64OrZero(subject), to_state, toString(ts) FROM gateway_events "
                                   "WHERE kind = 'audit_anchor' ORDER BY ts DESC, toUInt64OrZero(subject) DESC "
                                   "LIMIT 1")
    anchor = Anchor(seq=int(found[0][0]), hash=str(found[0][1]), ts=str(found[0][2])) if found else None
    return rows, anchor


def render(report: Report, anchor: Anchor | None) -> str:
    span = f"seq {report.first_seq}–{report.last_seq}" if report.checked else "no rows"
    anchored = f"; latest anchor seq {anchor.seq} ({anchor.ts})" if anchor else "; no anchor yet"
    if report.intact:
        tail = f", last hash {report.last_hash}" if report.last_hash else ""
        return f"audit_log intact: {report.checked} rows, {span}{tail}{anchored}"
    first = report.problems[0]
    lines = [f"audit_log BROKEN at seq {first.seq} ({first.kind}): {first.message}",
             f"checked {report.checked} rows, {span}{anchored}; {len(report.problems)} problem(s):"]
    lines += [f"  seq {p.seq}: {p.kind}: {p.message}" for p in report.problems]
    lines.append(NEXT_STEPS)
    return "\n".join(lines)


def as_json(report: Report, anchor: Anchor | None) -> str:
    return json.dumps({
        "intact": report.intact, "checked": report.checked, "first_seq": report.first_seq,
        "last_seq": report.last_seq, "last_hash": report.last_hash,
        "anchor": None if anchor is None else {"seq": anchor.seq, "hash": anchor.hash, "ts": anchor.ts},
        "problems": [{"kind": p.kind, "seq": p.seq, "last_seq": p.last_seq, "message": p.message}
                     for p in report.problems],
    })


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError:
        print(f"gateway audit verify: --since takes a seq or an ISO-8601 time, got {args.since!r}", file=sys.stderr)
        return 2
    try:
        rows, anchor = asyncio.run(load(Settings(), since))
    except SqlError as exc:
        print(f"gateway audit verify: cannot read audit_log: {exc}", file=sys.stderr)
        return 2
    report = verify(rows, trust_first=since is not None, anchor=anchor)
    text = as_json(report, anchor) if args.json else render(report, anchor)
    print(text, file=sys.stdout if report.intact or args.json else sys.stderr)
    return 0 if report.intact else 1


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("audit", help="the tamper-evident audit log")
    audit = p.add_subparsers(dest="audit_command", required=True)
    v = audit.add_parser("verify", help="recompute the audit chain; exit 1 naming the first altered, inserted "
                                        "or missing row")
    v.add_argument("--since", help="start at this seq or ISO-8601 time, trusting that row's prev_hash")
    v.add_argument("--json", action="store_true", help="the report as JSON")
    v.set_defaults(func=cmd_verify)
