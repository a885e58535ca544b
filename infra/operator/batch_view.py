"""What ``gateway batch`` shows, as pure functions: a batch object read from the API, the progress bar
line, the moving-window rate and ETA, the list table and the end-of-batch summary.

"done" counts every request the gateway has finished with, succeeded or failed
(``request_counts.completed + request_counts.failed``); "failed" is the part of it that failed.
"""

from __future__ import annotations

import datetime
from collections import deque
from dataclasses import dataclass
from typing import Any

TERMINAL = frozenset({"failed", "completed", "expired", "cancelled"})
"""Statuses a batch never leaves."""
SUCCESS = "completed"


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _opt_int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class Batch:
    """The fields of OpenAI's batch object that ``gateway batch`` shows."""

    id: str
    status: str
    endpoint: str
    total: int
    completed: int
    failed: int
    created_at: int | None
    in_progress_at: int | None
    ended_at: int | None
    output_file_id: str | None
    error_file_id: str | None
    errors: tuple[str, ...]

    @property
    def done(self) -> int:
        return self.completed + self.failed

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Batch:
        """Read a batch object; counts may be missing or null while it validates."""
        counts = body.get("request_counts") or {}
        ended = next((body.get(f"{s}_at") for s in ("completed", "failed", "expired", "cancelled")
                      if isinstance(body.get(f"{s}_at"), int)), None)
        return cls(id=str(body.get("id", "")), status=str(body.get("status", "unknown")),
                   endpoint=str(body.get("endpoint", "")), total=_int(counts.get("total")),
                   completed=_int(counts.get("completed")), failed=_int(counts.get("failed")),
                   created_at=_opt_int(body.get("created_at")), in_progress_at=_opt_int(body.get("in_progress_at")),
                   ended_at=_opt_int(ended), output_file_id=_opt_str(body.get("output_file_id")),
                   error_file_id=_opt_str(body.get("error_file_id")), errors=batch_errors(body.get("errors")))


def batch_errors(errors: Any) -> tuple[str, ...]:
    """A batch's ``errors`` list (``{"data": [{code, message, line, param}]}``) as one line each."""
    data = errors.get("data") if isinstance(errors, dict) else None
    out: list[str] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, dict):
            continue
        where = f"line {item['line']}: " if isinstance(item.get("line"), int) else ""
        code = f" ({item['code']})" if item.get("code") else ""
        out.append(f"{where}{item.get('message') or 'error'}{code}")
    return tuple(out)


class RateWindow:
    """Requests per second over the last ``span_s`` seconds of samples (a moving window), so the rate and
    the ETA follow the batch's current pace rather than its average since the start."""

    def __init__(self, span_s: float = 20.0) -> None:
        self.span_s = span_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, done: int) -> None:
        self._samples.append((at, done))
        while len(self._samples) > 2 and at - self._samples[1][0] >= self.span_s:
            self._samples.popleft()

    def rate(self) -> float | None:
        """``None`` until two samples at least a moment apart exist."""
        if len(self._samples) < 2:
            return None
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        if t1 - t0 <= 0:
            return None
        return max(d1 - d0, 0) / (t1 - t0)


def eta_seconds(remaining: int, rate: float | None) -> float | None:
    """Seconds left at ``rate``; ``None`` when it cannot be told (no rate yet, or nothing moving)."""
    if remaining <= 0:
        return 0.0
    if rate is None or rate <= 0:
        return None
    return remaining / rate


def format_duration(seconds: float | None) -> str:
    """``45s``, ``3m05s``, ``2h07m``; ``--`` for unknown."""
    if seconds is None:
        return "--"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def bar(done: int, total: int, width: int = 24) -> str:
    """``[######------]``: the done share of ``total`` in ``width`` cells (empty while total is unknown)."""
    filled = min(width, done * width // total) if total > 0 else 0
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def progress_line(batch: Batch, rate: float | None) -> str:
    """One line of progress: status, bar, done/total, failed, lines/s, ETA."""
    speed = "--" if rate is None else f"{rate:.1f}"
    eta = format_duration(eta_seconds(batch.total - batch.done, rate)) if batch.total else "--"
    return (f"{batch.status:<11} {bar(batch.done, batch.total)} {batch.done}/{batch.total}  "
            f"failed {batch.failed}  {speed} lines/s  ETA {eta}")


def redraw(line: str, previous_width: int) -> str:
    """What to write to a terminal to replace the last progress line with ``line``: a carriage return,
    the line, and blanks over what a longer previous line left."""
    return "\r" + line + " " * max(previous_width - len(line), 0)


def when(epoch_s: int | None) -> str:
    """An API timestamp as ``2026-12-04 19:30:00`` UTC; ``-`` when absent."""
    if epoch_s is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch_s, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")


LIST_COLUMNS = ("id", "status", "endpoint", "done/total", "failed", "created (UTC)")


def list_table(batches: list[Batch]) -> str:
    """The ``gateway batch list`` table, columns padded to their widest cell."""
    rows = [[b.id, b.status, b.endpoint, f"{b.done}/{b.total}", str(b.failed), when(b.created_at)]
            for b in batches]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(LIST_COLUMNS)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(LIST_COLUMNS, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def summary_lines(batch: Batch) -> list[str]:
    """What to say about a batch: its outcome, where its results are and the commands that fetch them."""
    took = ""
    start = batch.in_progress_at or batch.created_at
    if batch.ended_at is not None and start is not None:
        took = f" in {format_duration(batch.ended_at - start)}"
    counts = (f"{batch.completed} of {batch.total} requests succeeded, {batch.failed} failed" if batch.total
              else "no request ran" if batch.finished else "no request has run yet")
    lines = [f"batch {batch.id} {batch.status}{took}: {counts}"]
    lines += [f"  error: {error}" for error in batch.errors]
    if batch.output_file_id:
        lines.append(f"output file: {batch.output_file_id}  ->  gateway batch results {batch.id} -o output.jsonl")
    if batch.error_file_id:
        lines.append(f"error file:  {batch.error_file_id}  ->  gateway batch results {batch.id} --errors "
                     "-o errors.jsonl")
    if not batch.finished:
        lines.append(f"follow it: gateway batch status {batch.id} --watch; cancel it: gateway batch cancel {batch.id}")
    return lines
