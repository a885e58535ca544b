"""Time the ten analyst questions (``infra/clickhouse/questions.py``) on a store: each must answer in < 1 s.

    .venv/bin/python bench/analytics_bench.py /tmp/analytics-10m                    # an existing store
    .venv/bin/python bench/analytics_bench.py /tmp/analytics-10m --rows 10000000    # generate if empty

Opens the store with ``open_store`` (the embedded store: nothing else may hold the directory) and
generates ``--rows`` requests with ``gen_requests.generate`` when it holds none. The window is the
``--days`` (30) up to the hour after the newest request; the per-tenant questions ask about
``--tenant`` (``t00``, the largest). Each question runs ``--runs`` times through
``Store.query_readonly``, the path ``gateway sql`` takes (readonly session, rows converted to JSON-safe
values); the first run is the coldest. Prints one line per question (rows returned, first, median and
max ms), the machine's load average, the store's size on disk, and exits 1 if a question's median run
took ``--limit-ms`` (1000) or more; with ``--strict``, if any run did. Why the median by default: on
these shared machines another process can take both cores for a second at any moment, and one such
stall in five runs says nothing about the query (the max is printed next to it, and flagged).
``--markdown`` prints the table as the README shows it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.gen_requests import generate, store_url  # noqa: E402
from infra.clickhouse import Store, open_store  # noqa: E402
from infra.clickhouse.questions import QUESTIONS, Question, window_params  # noqa: E402


@dataclass(frozen=True, slots=True)
class Timing:
    question: Question
    rows: int
    ms: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.ms)

    @property
    def max_ms(self) -> float:
        return max(self.ms)


def time_question(store: Store, question: Question, params: dict[str, str], runs: int) -> Timing:
    """Run ``question`` ``runs`` times; its row count is the first run's."""
    ms: list[float] = []
    rows = 0
    for run in range(runs):
        began = time.perf_counter()
        result = store.query_readonly(question.sql, params, max_rows=100_000)
        ms.append((time.perf_counter() - began) * 1000)
        if run == 0:
            rows = len(result.rows)
    return Timing(question, rows, ms)


def bench_window(store: Store, days: float, tenant: str) -> dict[str, str]:
    """The ``days`` up to the hour after the newest request (rows generated to today 00:00 end there)."""
    newest = store.query_readonly("SELECT toUnixTimestamp(max(ts)) FROM requests").rows[0][0]
    end = datetime.fromtimestamp(int(str(newest)), UTC).replace(minute=0, second=0, microsecond=0)
    return window_params(end + timedelta(hours=1), days, tenant)


def table_sizes(store: Store) -> list[tuple[str, int, int]]:
    """(table, rows, bytes on disk) of the active parts, largest first."""
    result = store.query_readonly(
        "SELECT table, sum(rows), sum(bytes_on_disk) FROM system.parts WHERE active AND database = currentDatabase() "
        "GROUP BY table ORDER BY sum(bytes_on_disk) DESC"
    )
    return [(str(r[0]), int(str(r[1])), int(str(r[2]))) for r in result.rows]


def directory_bytes(url: str) -> int | None:
    """Everything under a chDB directory (parts, metadata, logs); None for a server."""
    parsed = urlparse(url)
    if parsed.scheme != "chdb":
        return None
    return sum(p.stat().st_size for p in Path(parsed.path).rglob("*") if p.is_file())


def _print_plain(timings: list[Timing], limit_ms: float) -> None:
    print(f"{'question':<30} {'source':<28} {'rows':>6} {'first ms':>9} {'median ms':>10} {'max ms':>8}")
    for t in timings:
        flag = "" if t.max_ms < limit_ms else "  (max over)" if t.median_ms < limit_ms else "  OVER"
        print(f"{t.question.name:<30} {t.question.source:<28} {t.rows:>6} {t.ms[0]:>9.0f} {t.median_ms:>10.0f} "
              f"{t.max_ms:>8.0f}{flag}")


def _print_markdown(timings: list[Timing]) -> None:
    print("| # | question | reads | rows | first ms | median ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for i, t in enumerate(timings, start=1):
        print(f"| {i} | `{t.question.name}` | `{t.question.source}` | {t.rows} | {t.ms[0]:.0f} | "
              f"{t.median_ms:.0f} | {t.max_ms:.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", help="store directory (chDB) or URL")
    parser.add_argument("--rows", type=int, default=10_000_000, help="requests to generate if the store has none")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--days", type=float, default=30)
    parser.add_argument("--tenant", default="t00")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--limit-ms", type=float, default=1000.0)
    parser.add_argument("--strict", action="store_true", help="fail if any run (not the median) is over the limit")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    url = store_url(args.store)
    with open_store(url) as store:
        store.migrate()
        count = int(str(store.query_readonly("SELECT count() FROM requests").rows[0][0]))
        if count == 0:
            generate(store, args.rows, seed=args.seed, days=args.days)
            count = int(str(store.query_readonly("SELECT count() FROM requests").rows[0][0]))
        params = bench_window(store, args.days, args.tenant)
        print(f"{count:,} requests; window {params['start']} .. {params['end']} UTC; tenant {params['tenant']}; "
              f"{args.runs} runs each; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC", flush=True)
        load_before = os.getloadavg()[0]
        timings = [time_question(store, q, params, args.runs) for q in QUESTIONS]
        load_after = os.getloadavg()[0]
        sizes = table_sizes(store)
    _print_markdown(timings) if args.markdown else _print_plain(timings, args.limit_ms)
    print(f"load average (1 min) {load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores")
    total = directory_bytes(url)
    active = sum(size for _, _, size in sizes)
    print("on disk: " + ", ".join(f"{name} {rows:,} rows {size / 2**20:,.0f} MiB" for name, rows, size in sizes))
    print(f"active parts {active / 2**30:.2f} GiB"
          + ("" if total is None else f"; directory {total / 2**30:.2f} GiB (with parts merged away, not yet removed)"))
    what = "every run" if args.strict else "the median run"
    over = [t.question.name for t in timings if (t.max_ms if args.strict else t.median_ms) >= args.limit_ms]
    if over:
        print(f"OVER {args.limit_ms:.0f} ms ({what}): {', '.join(over)}")
        return 1
    stalls = [t.question.name for t in timings if t.max_ms >= args.limit_ms]
    print(f"every question under {args.limit_ms:.0f} ms ({what})"
          + (f"; single runs over it: {', '.join(stalls)}" if stalls else "" if args.strict else "; every run too"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
