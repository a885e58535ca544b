"""Generate realistic ``requests`` rows, with their ``events`` and ``guardrail_verdicts``, into a store.

    .venv/bin/python bench/gen_requests.py /tmp/analytics-store --rows 10000000 --seed 1
    .venv/bin/python bench/gen_requests.py chdb:///tmp/analytics-store --rows 20000 --days 2

The store is opened and migrated with our own ``open_store``/``Store.migrate`` (so the materialized
views of every migration, 0009's hourly rollup included, see the rows), then filled in batches of
``--batch`` rows by ``INSERT ... SELECT FROM numbers()`` (``synthetic_sql.py`` says why in SQL and how it
stays deterministic). Prints rows/s per batch and overall. The rows end at ``--end`` (default: today
00:00 UTC) and span ``--days`` days; pass ``--end`` for byte-identical tables on another day.

What the traffic looks like (``traffic_mix.py``, ``synthetic_sql.py``): 40 tenants with a power-law
share of the traffic, up to 24 keys per tenant (also skewed) in five teams, each key mostly using
one preferred model; 20 models over 8 providers priced from ``infra/prices.yaml`` (one unpriced);
per-model error rates (429, 502, 503, 504, 400), per-model TTFT and decoding speed with a slow tail;
55 % of interactive chat requests streamed; prompt-cache hits on a quarter of the cacheable requests;
a guardrail profile on 70 % of requests with input/output guardrails that pass, flag, redact or block;
budget refusals; 5 % batch lines with a ``batch_id``/``custom_id``; redacted bodies of ~1.2 KB (request)
and ~1.7 KB (answer) built from placeholder-bearing sentences (rows older than 30 days land with them
empty: the column TTL).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.synthetic_sql import Window, insert_events, insert_requests, insert_verdicts  # noqa: E402
from bench.traffic_mix import priced_mix  # noqa: E402
from infra.clickhouse import Store, open_store  # noqa: E402


@dataclass(frozen=True, slots=True)
class GenerationReport:
    requests: int
    events: int
    verdicts: int
    seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def default_end() -> datetime:
    """Today 00:00 UTC: the rows end at the start of today, so 'the last 30 days' holds them all."""
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC)


def store_url(target: str) -> str:
    """A directory or a ``chdb://``/``http(s)://`` URL."""
    return target if "://" in target else f"chdb://{target}"


def _count(client: Any, table: str) -> int:
    return int(client.query(f"SELECT count() FROM {table}").result_rows[0][0])


def generate(
    store: Store, rows: int, *, seed: int = 1, end: datetime | None = None, days: float = 30,
    batch: int = 1_000_000, log: bool = True,
) -> GenerationReport:
    """Append ``rows`` requests (and their events and verdicts) to a migrated store.

    The store's write connection runs the INSERTs: the generator is the only writer (chDB: the only
    process) while it runs.
    """
    finish = end or default_end()
    span_s = round(days * 86400)
    start_s = int(finish.timestamp()) - span_s
    mix = priced_mix()
    client: Any = store._client  # the write connection; the read one is readonly = 1
    before = {t: _count(client, t) for t in ("requests", "events", "guardrail_verdicts")}
    began = time.perf_counter()
    for lo in range(0, rows, batch):
        hi = min(rows, lo + batch)
        window = Window(seed=seed, lo=lo, hi=hi, total=rows, start_s=start_s, span_s=span_s)
        t0 = time.perf_counter()
        client.command(insert_events(window, mix))
        client.command(insert_verdicts(window, mix))
        client.command(insert_requests(window, mix))
        took = time.perf_counter() - t0
        if log:
            print(f"rows {lo:>10,}..{hi:<10,} {took:6.1f} s  {(hi - lo) / took:>9,.0f} requests/s "
                  f"(with their events and verdicts)", flush=True)
    seconds = time.perf_counter() - began
    after = {t: _count(client, t) for t in before}
    report = GenerationReport(
        requests=after["requests"] - before["requests"], events=after["events"] - before["events"],
        verdicts=after["guardrail_verdicts"] - before["guardrail_verdicts"], seconds=seconds,
    )
    if log:
        print(f"generated {report.requests:,} requests, {report.events:,} events, {report.verdicts:,} verdicts "
              f"in {seconds:.1f} s: {report.rows_per_s:,.0f} requests/s", flush=True)
    return report


def _parse_end(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", help="store directory (chDB) or URL (chdb:///dir, http://user:pass@host:8123/db)")
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--end", type=_parse_end, default=None,
                        help="ISO time the rows end at (default today 00:00 UTC)")
    parser.add_argument("--batch", type=int, default=1_000_000, help="requests per INSERT")
    args = parser.parse_args(argv)
    if args.rows <= 0 or args.batch <= 0:
        parser.error("--rows and --batch must be positive")
    with open_store(store_url(args.store)) as store:
        store.migrate()
        generate(store, args.rows, seed=args.seed, end=args.end, days=args.days, batch=args.batch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
