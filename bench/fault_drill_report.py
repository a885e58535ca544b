"""The pure half of the fault drill (``bench/fault_drill.py``): what is sent and what must come back,
how each answer is classified, the schedule of kills and segments, the report and its rendering.
No servers, no clock: ``tests/unit/bench/test_fault_drill_report.py`` tests it all.

Outcomes of one attempt: ``correct``; ``wrong`` (200 with another text, or a stream that ended without
``[DONE]`` or an error: an SDK would hand that truncated text over silently); ``twice`` (repeated
content, several ``[DONE]``, events after the end); ``interrupted`` (a stream ended by an in-band
``data: {"error": ...}`` event, the text so far a prefix of the right one); ``cut`` (a stream whose
connection dropped mid-body); ``retryable`` (408/409/429/5xx or no HTTP answer: the SDK retries);
``stalled`` (a started stream that sent nothing more until the client's timeout); ``failed`` (any other
status). A logical request's final outcome is its last attempt's, where ``retryable``, ``failed``,
``stalled`` and unfinished mean ``lost``, and ``cut`` stays ``cut`` only when an ingress process was
killed during that stream (else ``lost``).
"""

from __future__ import annotations

import bisect
import contextlib
import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

MODEL = "gpt-4o-mini"
ECHO = "Echo: "
OUTSIDE = "mock_provider"  # the outside world: never killed by default
LAST_KINDS = ("batch", "sink", "ingress", "nats-server")  # killed after the stages, in this order
CONNECTION_KINDS = frozenset({"ingress"})  # kinds holding the clients' connections
MARKER_RE = re.compile(r"r\d{6}-[a-z]{8}")
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
FILLER = ("steady open-loop load keeps every stage of the gateway busy while the drill kills one process "
          "after another and counts the answers")

# outcomes of one attempt
CORRECT, WRONG, TWICE, INTERRUPTED, CUT, STALLED, RETRYABLE, FAILED = (
    "correct", "wrong", "twice", "interrupted", "cut", "stalled", "retryable", "failed")
# final outcomes of a logical request: CORRECT, WRONG, TWICE, INTERRUPTED, CUT or LOST
LOST = "lost"
REFUSED_STATUSES = frozenset({429, 503})


def is_retryable_status(status: int) -> bool:
    """The statuses the OpenAI SDK retries."""
    return status in (408, 409, 429) or status >= 500


# -- what is sent and what must come back ------------------------------------------------------------------


@dataclass(frozen=True)
class RequestSpec:
    index: int
    scheduled: float  # seconds after the start of the load
    stream: bool
    marker: str  # unique: what the provider calls are counted by
    text: str  # the user message, mock directive included
    expected: str  # the one correct answer

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": self.text}]}
        if self.stream:
            body["stream"] = True
        return body


def make_spec(index: int, scheduled: float, stream: bool, nonce: str, latency_ms: int = 30,
              chunk_delay_ms: int = 20) -> RequestSpec:
    """The mock answers ``"Echo: " + <the text without its directive>``; streams get a text of ~150
    characters, 8 a chunk (~20 chunks, ~0.4 s at ``chunk_delay_ms`` 20)."""
    marker = f"r{index:06d}-{nonce}"
    payload = f"drill {marker} {FILLER}" if stream else f"drill {marker}"
    directive = (f"[[mock latency_ms={latency_ms} chunk_delay_ms={chunk_delay_ms} chunk_chars=8]]" if stream
                 else f"[[mock latency_ms={latency_ms}]]")
    return RequestSpec(index, scheduled, stream, marker, f"{payload} {directive}", ECHO + payload)


def is_stream(index: int, fraction: float) -> bool:
    """Spreads the streamed requests evenly: exactly ``fraction`` of every run of requests."""
    return math.floor((index + 1) * fraction) > math.floor(index * fraction)


# -- one attempt: classification (pure) ----------------------------------------------------------------------


@dataclass(frozen=True)
class StreamParse:
    contents: tuple[str, ...]  # the non-empty delta.content of each chunk, in order
    done: int  # `data: [DONE]` events
    errors: tuple[str, ...]  # in-band `data: {"error": ...}` events (their messages)
    finishes: int  # chunks with a finish_reason
    roles: int  # chunks with delta.role
    after_terminal: int  # events after the first [DONE] or error
    undecodable: int

    @property
    def text(self) -> str:
        return "".join(self.contents)


def parse_sse(raw: bytes) -> StreamParse:
    """An OpenAI chat-completion SSE body (possibly cut short) as a :class:`StreamParse`."""
    contents: list[str] = []
    errors: list[str] = []
    done = finishes = roles = after = undecodable = 0
    terminal = False
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = b"\n".join(line[5:].lstrip() for line in block.split(b"\n") if line.startswith(b"data:"))
        if not data:
            continue
        if terminal:
            after += 1
        if data == b"[DONE]":
            done += 1
            terminal = True
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            undecodable += 1
            continue
        if not isinstance(event, dict):
            undecodable += 1
            continue
        if "error" in event:
            error = event["error"]
            errors.append(str(error.get("message", error)) if isinstance(error, dict) else str(error))
            terminal = True
            continue
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("role"):
                roles += 1
            if delta.get("content"):
                contents.append(str(delta["content"]))
            if choice.get("finish_reason"):
                finishes += 1
    return StreamParse(tuple(contents), done, tuple(errors), finishes, roles, after, undecodable)


def looks_duplicated(contents: Sequence[str], expected: str) -> bool:
    """A wrong text that is the right one with parts repeated (a rerun relayed after, or into, the first)."""
    text = "".join(contents)
    if text == expected:
        return False
    if expected in text:
        return True
    collapsed = [c for i, c in enumerate(contents) if i == 0 or c != contents[i - 1]]
    return "".join(collapsed) == expected


def classify_stream(parse: StreamParse, clean_end: bool, expected: str, timed_out: bool = False) -> tuple[str, str]:
    """(outcome, detail) of a stream answered 200. ``clean_end``: the body ended normally (no
    connection error); ``timed_out``: the client gave up waiting for the rest."""
    text = parse.text
    if parse.done > 1 or parse.after_terminal or parse.finishes > 1 or parse.roles > 1:
        return TWICE, (f"{parse.done} [DONE], {parse.finishes} finish chunks, {parse.roles} role chunks, "
                       f"{parse.after_terminal} events after the end")
    if looks_duplicated(parse.contents, expected):
        return TWICE, f"repeated content: {text[:80]!r}"
    if not expected.startswith(text):
        return WRONG, f"content {text[:80]!r}"
    if parse.errors:
        return INTERRUPTED, f"in-band error after {len(text)}/{len(expected)} chars: {parse.errors[0][:120]}"
    if parse.done:
        return (CORRECT, "") if text == expected else (WRONG, f"[DONE] after {len(text)}/{len(expected)} chars")
    if clean_end:  # an SDK ends such a stream without any error: a silently truncated answer
        return WRONG, f"body ended without [DONE] after {len(text)}/{len(expected)} chars"
    if timed_out:  # nothing more came: the caller waits for its own timeout (600 s by the SDK's default)
        return STALLED, f"no end within the client timeout after {len(text)}/{len(expected)} chars"
    return CUT, f"connection dropped after {len(text)}/{len(expected)} chars"


def classify_plain(status: int, body: bytes, expected: str) -> tuple[str, str]:
    """(outcome, detail) of a non-stream answer, or of any answer that is not 200."""
    if status != 200:
        detail = f"HTTP {status}"
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError, TypeError, KeyError, IndexError):
            error = orjson.loads(body)["error"]
            detail += f" {error.get('code') or error.get('type')}: {str(error.get('message'))[:120]}"
        return (RETRYABLE if is_retryable_status(status) else FAILED), detail
    try:
        content = orjson.loads(body)["choices"][0]["message"]["content"]
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        return WRONG, f"200 without a message: {body[:120]!r}"
    if content == expected:
        return CORRECT, ""
    return WRONG, f"content {str(content)[:80]!r}"


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date), as the OpenAI SDK reads them."""
    value = headers.get("retry-after-ms")
    if value is not None:
        with contextlib.suppress(ValueError):
            return float(value) / 1000
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
    except (TypeError, ValueError, IndexError):
        return None


def sdk_retry_delay(retries_done: int, retry_after: float | None, jitter: float) -> float:
    """The OpenAI SDK's wait before a retry: the server's hint when in (0, 60] s, else 0.5 s · 2^n capped
    at 8 s, minus up to 25 % jitter (``jitter`` in [0, 1))."""
    if retry_after is not None and 0 < retry_after <= 60:
        return retry_after
    return min(0.5 * 2.0**retries_done, 8.0) * (1 - 0.25 * jitter)


# -- a logical request and its final outcome ------------------------------------------------------------------


@dataclass
class Attempt:
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (connection error, timeout)
    outcome: str
    request_id: str = ""
    detail: str = ""
    retry_after: float | None = None


@dataclass
class RequestRecord:
    spec: RequestSpec
    attempts: list[Attempt] = field(default_factory=list)
    finished: float | None = None  # when the last attempt ended; None: still running when given up on

    @property
    def request_ids(self) -> list[str]:
        return [a.request_id for a in self.attempts if a.request_id]


def final_outcome(record: RequestRecord, connection_kills: Sequence[float] = (), slack_s: float = 1.0) -> str:
    """CORRECT, WRONG, TWICE, INTERRUPTED, CUT or LOST. A stream cut by a dropped connection is CUT when a
    process holding client connections (ingress) was killed while it ran, else LOST."""
    if record.finished is None or not record.attempts:
        return LOST
    last = record.attempts[-1]
    if last.outcome in (CORRECT, WRONG, TWICE, INTERRUPTED):
        return last.outcome
    if last.outcome == CUT:
        return CUT if any(last.started <= k <= last.ended + slack_s for k in connection_kills) else LOST
    return LOST


def lost_cause(record: RequestRecord) -> str:
    if record.finished is None or not record.attempts:
        return "unfinished"
    last = record.attempts[-1]
    if last.outcome == CUT:
        return "stream cut, no ingress kill"
    if last.outcome == STALLED:
        return "stream stalled mid-body"
    if last.status is not None:
        return f"HTTP {last.status}"
    return last.detail.split(":")[0] or "no answer"


# -- the schedule (pure) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    name: str
    start: float
    end: float


def default_kinds(pids: Mapping[str, int]) -> list[str]:
    """Every kind in ``pids.json`` except the mock provider: the stages (in ``pids.json`` order), then
    the sink, ingress, and nats-server last. A kind is a name up to its first '.' (``stages.1``)."""
    kinds = list(dict.fromkeys(kind_of(name) for name in pids))
    stages = [k for k in kinds if k != OUTSIDE and k not in LAST_KINDS]
    return stages + [k for k in LAST_KINDS if k in kinds]


def kind_of(name: str) -> str:
    return name.split(".", 1)[0]


def plan_kills(kinds: Sequence[str], warmup_s: float, kill_every_s: float, soak_s: float = 0.0) -> list[
        tuple[float, str]]:
    """(time, kind) of every kill: one per kind, or with ``soak_s`` the cycle repeated for that long
    (at least once)."""
    if not kinds:
        return []
    count = len(kinds) if soak_s <= 0 else max(len(kinds), math.ceil(soak_s / kill_every_s))
    return [(warmup_s + i * kill_every_s, kinds[i % len(kinds)]) for i in range(count)]


def plan_segments(kills: Sequence[tuple[float, str]], warmup_s: float, kill_every_s: float,
                  tail_s: float) -> list[Segment]:
    segments = [Segment("steady", 0.0, warmup_s)]
    seen: Counter[str] = Counter()
    for at, kind in kills:
        seen[kind] += 1
        name = f"kill {kind}" if seen[kind] == 1 else f"kill {kind} ({seen[kind]})"
        segments.append(Segment(name, at, at + kill_every_s))
    end = segments[-1].end
    segments.append(Segment("tail", end, end + tail_s))
    return segments


def segment_of(t: float, segments: Sequence[Segment]) -> int:
    """Index of the segment a scheduled time belongs to (the last one past the end)."""
    return max(0, bisect.bisect_right([s.start for s in segments], t) - 1)


# -- the report (pure) ----------------------------------------------------------------------------------


@dataclass
class KillRecord:
    at: float  # seconds after the start of the load
    kind: str
    name: str = ""
    pid: int | None = None
    error: str = ""  # why nothing was killed
    new_pid: int | None = None
    replaced_after_s: float | None = None  # until a new pid for that name was in pids.json
    first_correct_after_s: float | None = None  # until the first correct answer scheduled after the kill


@dataclass
class SegmentStats:
    name: str
    start: float = 0.0
    end: float = 0.0
    sent: int = 0
    correct: int = 0
    lost: int = 0
    interrupted: int = 0
    cut: int = 0
    wrong: int = 0
    twice: int = 0
    refused: int = 0  # attempts answered 429/503
    retried: int = 0  # requests with more than one attempt
    extra_calls: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None
    ids: int = 0
    ids_not_one_row: int | None = None  # None: rows not checked
    ids_zero_rows: int | None = None
    lost_causes: dict[str, int] = field(default_factory=dict)


@dataclass
class ResourceGrowth:
    name: str
    pid_start: int
    pid_end: int
    rss_start_mb: float
    rss_end_mb: float
    rss_growth_pct: float | None
    fds_start: int
    fds_end: int
    fds_growth_pct: float | None


@dataclass
class DrillReport:
    options: dict[str, Any]
    segments: list[SegmentStats]
    total: SegmentStats
    kills: list[KillRecord]
    rows_checked: bool
    rows_error: str = ""
    resources: list[ResourceGrowth] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 1)


def segment_stats(segment: Segment, records: Iterable[RequestRecord], outcomes: Mapping[int, str],
                  calls: Mapping[str, int], rows: Mapping[str, int] | None) -> SegmentStats:
    stats = SegmentStats(segment.name, segment.start, segment.end)
    latencies: list[float] = []
    causes: Counter[str] = Counter()
    ids: list[str] = []
    for record in records:
        outcome = outcomes[record.spec.index]
        stats.sent += 1
        if outcome == CORRECT:
            stats.correct += 1
            assert record.finished is not None
            latencies.append((record.finished - record.spec.scheduled) * 1000)
        elif outcome == LOST:
            stats.lost += 1
            causes[lost_cause(record)] += 1
        elif outcome == INTERRUPTED:
            stats.interrupted += 1
        elif outcome == CUT:
            stats.cut += 1
        elif outcome == WRONG:
            stats.wrong += 1
        elif outcome == TWICE:
            stats.twice += 1
        stats.refused += sum(1 for a in record.attempts if a.status in REFUSED_STATUSES)
        stats.retried += len(record.attempts) > 1
        stats.extra_calls += max(0, calls.get(record.spec.marker, 0) - 1)
        ids.extend(record.request_ids)
    latencies.sort()
    stats.p50_ms, stats.p99_ms = percentile(latencies, 0.5), percentile(latencies, 0.99)
    stats.ids = len(ids)
    if rows is not None:
        stats.ids_not_one_row = sum(1 for i in ids if rows.get(i, 0) != 1)
        stats.ids_zero_rows = sum(1 for i in ids if rows.get(i, 0) == 0)
    stats.lost_causes = dict(causes.most_common())
    return stats


def add_stats(name: str, parts: Sequence[SegmentStats], latencies_ms: Sequence[float]) -> SegmentStats:
    total = SegmentStats(name, parts[0].start if parts else 0.0, parts[-1].end if parts else 0.0)
    for part in parts:
        for key in ("sent", "correct", "lost", "interrupted", "cut", "wrong", "twice", "refused", "retried",
                    "extra_calls", "ids"):
            setattr(total, key, getattr(total, key) + getattr(part, key))
        for key in ("ids_not_one_row", "ids_zero_rows"):
            value = getattr(part, key)
            if value is not None:
                setattr(total, key, (getattr(total, key) or 0) + value)
        for cause, n in part.lost_causes.items():
            total.lost_causes[cause] = total.lost_causes.get(cause, 0) + n
    ordered = sorted(latencies_ms)
    total.p50_ms, total.p99_ms = percentile(ordered, 0.5), percentile(ordered, 0.99)
    return total


def describe(record: RequestRecord, outcome: str) -> str:
    kind = "stream" if record.spec.stream else "plain"
    tries = "; ".join(f"#{n + 1} at {a.started:.2f}s: {a.status or '-'} {a.outcome} {a.detail} "
                      f"(id {a.request_id or '-'})".replace("  ", " ")
                      for n, a in enumerate(record.attempts)) or "no attempt finished"
    return f"{record.spec.marker} ({kind}, scheduled {record.spec.scheduled:.2f}s) {outcome}: {tries}"


def build_report(records: Sequence[RequestRecord], segments: Sequence[Segment], kills: Sequence[KillRecord],
                 calls: Mapping[str, int], rows: Mapping[str, int] | None, *, rows_error: str = "",
                 max_extra_pct: float = 2.0, options: Mapping[str, Any] | None = None,
                 resources: Sequence[ResourceGrowth] = (), notes: Sequence[str] = ()) -> DrillReport:
    """Outcomes per segment and in total, the recovery time of every kill, and the verdict."""
    outcomes = request_outcomes(records, kills)
    by_segment: list[list[RequestRecord]] = [[] for _ in segments]
    for r in records:
        by_segment[segment_of(r.spec.scheduled, segments)].append(r)
    stats = [segment_stats(s, rs, outcomes, calls, rows) for s, rs in zip(segments, by_segment, strict=True)]
    correct_ms = [(r.finished - r.spec.scheduled) * 1000 for r in records
                  if outcomes[r.spec.index] == CORRECT and r.finished is not None]
    total = add_stats("total", stats, correct_ms)
    finished_correct = sorted((r.spec.scheduled, r.finished) for r in records
                              if outcomes[r.spec.index] == CORRECT and r.finished is not None)
    kill_records = [recovery(k, finished_correct) for k in kills]

    failures: list[str] = []

    def where(attr: str) -> str:
        parts = [f"{s.name}: {getattr(s, attr)}" for s in stats if getattr(s, attr)]
        return f" ({', '.join(parts)})" if parts else ""

    for attr, label in (("lost", "lost"), ("wrong", "wrong"), ("twice", "answered twice")):
        if getattr(total, attr):
            failures.append(f"{getattr(total, attr)} {label}{where(attr)}")
    if rows is None:
        failures.append(f"requests rows not checked: {rows_error or 'no answer from gateway sql'}")
    elif total.ids_not_one_row:
        failures.append(f"{total.ids_not_one_row} of {total.ids} request ids without exactly one requests row "
                        f"({total.ids_zero_rows} without any){where('ids_not_one_row')}")
    extra_pct = 100 * total.extra_calls / total.sent if total.sent else 0.0
    if extra_pct > max_extra_pct:
        failures.append(f"{total.extra_calls} extra provider calls = {extra_pct:.1f}% of {total.sent} sent "
                        f"> {max_extra_pct}%{where('extra_calls')}")
    examples: list[str] = []
    for outcome in (LOST, WRONG, TWICE, INTERRUPTED, CUT):
        examples += [describe(r, outcome) for r in records if outcomes[r.spec.index] == outcome][:3]
    return DrillReport(dict(options or {}), stats, total, kill_records, rows is not None, rows_error,
                       list(resources), failures, list(notes), examples)


def request_outcomes(records: Sequence[RequestRecord], kills: Sequence[KillRecord]) -> dict[int, str]:
    """The final outcome of every request, by index; a request id seen in two attempts (of one request or
    of two) makes each of them TWICE: the gateway answered one request twice."""
    connection_kills = [k.at for k in kills if k.kind in CONNECTION_KINDS and k.pid is not None]
    outcomes = {r.spec.index: final_outcome(r, connection_kills) for r in records}
    id_uses = Counter(rid for r in records for rid in r.request_ids)
    for r in records:
        if any(id_uses[rid] > 1 for rid in r.request_ids):
            outcomes[r.spec.index] = TWICE
    return outcomes


def dump_lines(records: Sequence[RequestRecord], segments: Sequence[Segment], kills: Sequence[KillRecord],
               calls: Mapping[str, int], rows: Mapping[str, int] | None) -> list[dict[str, Any]]:
    """One JSON-ready object per request: its segment, final outcome, attempts, provider calls, rows."""
    outcomes = request_outcomes(records, kills)
    return [{"marker": r.spec.marker, "stream": r.spec.stream, "scheduled": round(r.spec.scheduled, 3),
             "segment": segments[segment_of(r.spec.scheduled, segments)].name, "outcome": outcomes[r.spec.index],
             "finished": None if r.finished is None else round(r.finished, 3),
             "provider_calls": calls.get(r.spec.marker, 0),
             "rows": None if rows is None else {rid: rows.get(rid, 0) for rid in r.request_ids},
             "attempts": [{**asdict(a), "started": round(a.started, 3), "ended": round(a.ended, 3)}
                          for a in r.attempts]}
            for r in records]


def recovery(kill: KillRecord, finished_correct: Sequence[tuple[float, float]]) -> KillRecord:
    """The kill with the time until the first correct answer scheduled after it completed
    (``finished_correct``: (scheduled, finished) pairs sorted by schedule)."""
    if kill.pid is None:
        return kill
    start = bisect.bisect_left(finished_correct, (kill.at, -math.inf))
    ends = [finished for _, finished in finished_correct[start:]]
    first = min(ends) - kill.at if ends else None
    return KillRecord(**{**asdict(kill), "first_correct_after_s": None if first is None else round(first, 3)})


def resource_growth(samples: Sequence[tuple[float, Mapping[str, tuple[int, int, int]]]],
                    baseline_t: float) -> list[ResourceGrowth]:
    """Per process name: (pid, RSS kB, fds) at the first sample taken at or after ``baseline_t`` (else
    the first sample) and at the last one, with the growth in %."""
    if not samples:
        return []
    base_t, base = next(((t, s) for t, s in samples if t >= baseline_t), samples[0])
    _, last = samples[-1]

    def growth(a: int, b: int) -> float | None:
        return round(100 * (b - a) / a, 1) if a else None

    out: list[ResourceGrowth] = []
    for name in last:
        if name not in base:
            continue
        (pid0, rss0, fd0), (pid1, rss1, fd1) = base[name], last[name]
        out.append(ResourceGrowth(name, pid0, pid1, round(rss0 / 1024, 1), round(rss1 / 1024, 1),
                                  growth(rss0, rss1), fd0, fd1, growth(fd0, fd1)))
    return out


# -- rendering (pure) ------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def render_report(report: DrillReport) -> str:
    o = report.options
    lines = [f"Fault drill: {o.get('rate')} req/s, {100 * float(o.get('stream_fraction', 0)):.0f}% streamed, "
             f"{o.get('client_retries')} client retries, kills every {o.get('kill_every_s')} s: "
             f"{', '.join(o.get('kinds') or []) or 'none'}", ""]
    header = ["segment", "sent", "correct", "lost", "interrupted", "cut", "wrong", "twice", "refused 429/503",
              "retried", "extra provider calls", "p50 ms", "p99 ms", "ids", "ids ≠ 1 row", "ids 0 rows"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for s in [*report.segments, report.total]:
        cells = [s.name, s.sent, s.correct, s.lost, s.interrupted, s.cut, s.wrong, s.twice, s.refused, s.retried,
                 s.extra_calls, s.p50_ms, s.p99_ms, s.ids, s.ids_not_one_row, s.ids_zero_rows]
        row = [_cell(c) for c in cells]
        if s is report.total:
            row = [f"**{c}**" for c in row]
        lines.append("| " + " | ".join(row) + " |")
    causes = [(s.name, s.lost_causes) for s in report.segments if s.lost_causes]
    if causes:
        lines += ["", "Lost, by the last attempt's answer:"]
        lines += [f"- {name}: " + ", ".join(f"{c} ×{n}" for c, n in lc.items()) for name, lc in causes]
    lines += ["", "| kill at s | kind | process | pid | replaced after s | first correct answer after s |",
              "|---|---|---|---|---|---|"]
    for k in report.kills:
        replaced = _cell(k.replaced_after_s) if k.pid is not None else f"not killed: {k.error}"
        if k.pid is not None and k.replaced_after_s is None:
            replaced = "never"
        lines.append(f"| {k.at:.1f} | {k.kind} | {k.name or '-'} | {_cell(k.pid)} | {replaced} | "
                     f"{_cell(k.first_correct_after_s) if k.pid is not None else '-'} |")
    if report.resources:
        lines += ["", "| process | pid start→end | RSS MB start | RSS MB end | RSS growth % | fds start | fds end "
                      "| fds growth % |", "|---|---|---|---|---|---|---|---|"]
        for r in report.resources:
            pids = f"{r.pid_start}" if r.pid_start == r.pid_end else f"{r.pid_start}→{r.pid_end}"
            lines.append(f"| {r.name} | {pids} | {r.rss_start_mb} | {r.rss_end_mb} | {_cell(r.rss_growth_pct)} | "
                         f"{r.fds_start} | {r.fds_end} | {_cell(r.fds_growth_pct)} |")
    if report.examples:
        lines += ["", "Examples:"] + [f"- {e}" for e in report.examples]
    if report.notes:
        lines += ["", "Notes:"] + [f"- {n}" for n in report.notes]
    lines += [""]
    if report.ok:
        lines.append("PASS: nothing lost, wrong or answered twice; one requests row per request id.")
    else:
        lines += ["FAIL:"] + [f"- {f}" for f in report.failures]
    return "\n".join(lines)
