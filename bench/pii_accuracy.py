"""Measure the PII engines on the labelled set: precision and recall per entity type, latency per request.

    python bench/pii_accuracy.py [--engine pattern|ner|all] [--rounds 3] [--max-errors 40] [--json]

The set is ``bench/data/pii_labelled.jsonl`` (written by ``bench/pii_dataset.py``). Each engine's scanner
is built the way the gateway builds it, ``infra.bootstrap.pii_scanner``, with the engine's default
entities plus those of the set's types it can find, at the default threshold (``Redaction().score_threshold``).

Matching: a prediction is a true positive when it overlaps a gold span of the same type; a gold span is
found when a prediction of its type overlaps it (``exact`` = one also has the very same boundaries).
precision = true-positive predictions / predictions, recall = gold spans found / gold spans, per type and
micro-averaged. Gold spans of a type the engine does not look for are left out (``not targeted``).
Latency = one ``scanner.find`` per sentence, after one warm-up pass, over ``--rounds`` passes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pii_dataset import DATA_FILE  # noqa: E402
from schemas.config import (  # noqa: E402
    DEFAULT_ENTITIES,
    NER_DEFAULT_ENTITIES,
    PiiEngine,
    Redaction,
    engine_entities,
)

ENGINES: tuple[PiiEngine, ...] = ("pattern", "ner")
PATTERN_TYPES = tuple(DEFAULT_ENTITIES)
SET_TYPES = (*DEFAULT_ENTITIES, *NER_DEFAULT_ENTITIES)

PATTERN_MICRO_RECALL_TARGET = 0.95
"""Pattern engine, micro recall over the pattern types (issue 5)."""
PATTERN_TYPE_RECALL_FLOOR = 0.90
"""Pattern engine, recall of each pattern type."""
PERSON_RECALL_TARGET = 0.85
"""NER engine, recall on PERSON (issue 5)."""


# --- the set ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    entity: str
    format: str = ""


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    text: str
    spans: tuple[Span, ...]


def parse_item(line: str) -> Item:
    raw = json.loads(line)
    spans = tuple(
        Span(int(s["start"]), int(s["end"]), str(s["entity"]), str(s.get("format", ""))) for s in raw["spans"]
    )
    item = Item(str(raw["id"]), str(raw["text"]), spans)
    for span in spans:
        if not 0 <= span.start < span.end <= len(item.text):
            raise ValueError(f"{item.id}: span {span} outside the text")
    return item


def load_set(path: Path = DATA_FILE) -> list[Item]:
    with path.open(encoding="utf-8") as f:
        return [parse_item(line) for line in f if line.strip()]


# --- matching -----------------------------------------------------------------------------------------


class FindingLike(Protocol):
    @property
    def entity_type(self) -> str: ...
    @property
    def start(self) -> int: ...
    @property
    def end(self) -> int: ...
    @property
    def score(self) -> float: ...


class Scanner(Protocol):
    def find(self, text: str) -> Sequence[FindingLike]: ...


def overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


@dataclass(frozen=True, slots=True)
class ItemMatch:
    """For one sentence: per gold span, found / found with exact boundaries; per prediction, true positive."""

    gold_found: tuple[bool, ...]
    gold_exact: tuple[bool, ...]
    predicted_tp: tuple[bool, ...]


def match(gold: Sequence[Span], predicted: Sequence[FindingLike]) -> ItemMatch:
    def same(g: Span, p: FindingLike) -> bool:
        return g.entity == p.entity_type and overlaps(g.start, g.end, p.start, p.end)

    return ItemMatch(
        gold_found=tuple(any(same(g, p) for p in predicted) for g in gold),
        gold_exact=tuple(
            any(g.entity == p.entity_type and (g.start, g.end) == (p.start, p.end) for p in predicted) for g in gold
        ),
        predicted_tp=tuple(any(same(g, p) for g in gold) for p in predicted),
    )


@dataclass
class TypeScore:
    entity: str
    gold: int = 0
    predicted: int = 0
    true_positive: int = 0
    found: int = 0
    exact: int = 0

    @property
    def precision(self) -> float | None:
        return self.true_positive / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        return self.found / self.gold if self.gold else None

    @property
    def exact_rate(self) -> float | None:
        """Of the gold spans found, the share found with exactly the gold boundaries."""
        return self.exact / self.found if self.found else None

    def add(self, other: TypeScore) -> None:
        self.gold += other.gold
        self.predicted += other.predicted
        self.true_positive += other.true_positive
        self.found += other.found
        self.exact += other.exact

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "exact_rate": self.exact_rate}


@dataclass(frozen=True, slots=True)
class Miss:
    item_id: str
    entity: str
    format: str
    value: str
    found_as: tuple[str, ...]
    """Types of the predictions overlapping the missed span (another type, or none)."""


@dataclass(frozen=True, slots=True)
class FalsePositive:
    item_id: str
    entity: str
    value: str
    score: float
    overlaps_gold: str | None
    """The type of a gold span it overlaps (a type confusion), or None."""


@dataclass(frozen=True, slots=True)
class Inexact:
    """A gold span found only with other boundaries."""

    item_id: str
    entity: str
    value: str
    predicted: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Latency:
    calls: int
    rounds: int
    median_ms: float
    p95_ms: float
    mean_ms: float
    max_ms: float


@dataclass
class Report:
    engine: str
    entities: list[str]
    sentences: int
    pii_sentences: int
    per_type: dict[str, TypeScore]
    untargeted_gold: dict[str, int]
    misses: list[Miss] = field(default_factory=list)
    false_positives: list[FalsePositive] = field(default_factory=list)
    inexact: list[Inexact] = field(default_factory=list)
    negatives: int = 0
    negatives_with_fp: int = 0
    negative_fp: int = 0
    latency: Latency | None = None
    build_s: float | None = None

    def micro(self, types: Iterable[str] | None = None) -> TypeScore:
        total = TypeScore("micro")
        for entity, score in self.per_type.items():
            if types is None or entity in set(types):
                total.add(score)
        return total

    def to_json(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "entities": self.entities,
            "sentences": self.sentences,
            "pii_sentences": self.pii_sentences,
            "per_type": {k: v.to_json() for k, v in self.per_type.items()},
            "micro": self.micro().to_json(),
            "micro_pattern_types": self.micro(PATTERN_TYPES).to_json(),
            "untargeted_gold": self.untargeted_gold,
            "negatives": {"sentences": self.negatives, "with_fp": self.negatives_with_fp, "fp": self.negative_fp},
            "latency": asdict(self.latency) if self.latency else None,
            "build_s": self.build_s,
            "misses": [asdict(m) for m in self.misses],
            "false_positives": [asdict(f) for f in self.false_positives],
            "inexact": [asdict(i) for i in self.inexact],
        }


def evaluate(scanner: Scanner, items: Sequence[Item], entities: Sequence[str], engine: str = "") -> Report:
    """Accuracy of ``scanner`` (which looks for ``entities``) on ``items``; no timing."""
    targeted = list(dict.fromkeys(entities))
    per_type = {e: TypeScore(e) for e in targeted}
    report = Report(engine, targeted, len(items), sum(1 for i in items if i.spans), per_type, {})
    asked = set(targeted)
    for item in items:
        gold = [s for s in item.spans if s.entity in asked]
        for s in item.spans:
            if s.entity not in asked:
                report.untargeted_gold[s.entity] = report.untargeted_gold.get(s.entity, 0) + 1
        predicted = list(scanner.find(item.text))
        m = match(gold, predicted)
        for g, found, exact in zip(gold, m.gold_found, m.gold_exact, strict=True):
            score = per_type[g.entity]
            score.gold += 1
            score.found += found
            score.exact += exact
            if found and not exact:
                report.inexact.append(Inexact(item.id, g.entity, item.text[g.start:g.end], tuple(
                    item.text[p.start:p.end] for p in predicted
                    if p.entity_type == g.entity and overlaps(g.start, g.end, p.start, p.end))))
            if not found:
                others = tuple(sorted({p.entity_type for p in predicted if overlaps(g.start, g.end, p.start, p.end)}))
                report.misses.append(Miss(item.id, g.entity, g.format, item.text[g.start:g.end], others))
        for p, tp in zip(predicted, m.predicted_tp, strict=True):
            score = per_type.setdefault(p.entity_type, TypeScore(p.entity_type))
            score.predicted += 1
            score.true_positive += tp
            if not tp:
                other = next((s.entity for s in item.spans if overlaps(s.start, s.end, p.start, p.end)), None)
                report.false_positives.append(
                    FalsePositive(item.id, p.entity_type, item.text[p.start:p.end], round(p.score, 3), other))
        if not item.spans:
            report.negatives += 1
            report.negative_fp += len(predicted)
            report.negatives_with_fp += bool(predicted)
    return report


# --- latency and engines ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def measure_latency(scanner: Scanner, texts: Sequence[str], rounds: int = 3, warmup_rounds: int = 1) -> Latency:
    """One ``find`` per text per round, timed individually; the warm-up rounds are not counted."""
    for _ in range(warmup_rounds):
        for text in texts:
            scanner.find(text)
    times: list[float] = []
    for _ in range(rounds):
        for text in texts:
            t0 = time.perf_counter()
            scanner.find(text)
            times.append((time.perf_counter() - t0) * 1000)
    return Latency(len(times), rounds, statistics.median(times), percentile(times, 0.95), statistics.fmean(times),
                   max(times))


def entities_for(engine: PiiEngine, items: Sequence[Item]) -> list[str]:
    """The engine's default entities plus every type of the set it can find."""
    in_set = {s.entity for item in items for s in item.spans}
    can_find = set(engine_entities(engine))
    extra = [e for e in SET_TYPES if e in in_set and e in can_find]
    return list(dict.fromkeys([*Redaction(engine=engine).entity_types, *extra]))


def build_scanner(engine: PiiEngine, entities: Sequence[str]) -> Scanner:
    """Through the gateway's own code path: ``infra.bootstrap.pii_scanner``."""
    from infra import bootstrap

    return bootstrap.pii_scanner(list(entities), Redaction().score_threshold, [], engine=engine)


def run(engine: PiiEngine, items: Sequence[Item], rounds: int = 3) -> Report:
    entities = entities_for(engine, items)
    t0 = time.perf_counter()
    scanner = build_scanner(engine, entities)
    build_s = time.perf_counter() - t0
    report = evaluate(scanner, items, entities, engine)
    report.build_s = build_s
    if rounds > 0:
        report.latency = measure_latency(scanner, [i.text for i in items], rounds)
    return report


# --- output -----------------------------------------------------------------------------------------


def _f(value: float | None) -> str:
    return "   n/a" if value is None else f"{value:6.3f}"


def _row(name: str, s: TypeScore) -> str:
    return (f"  {name:<22} {s.gold:>5} {s.predicted:>5} {s.true_positive:>5} {s.found:>5}  "
            f"{_f(s.precision)} {_f(s.recall)} {_f(s.exact_rate)}")


def targets(report: Report) -> list[tuple[str, float | None, float, bool]]:
    """(what, measured, target, met) for the issue's targets that apply to this engine."""
    out: list[tuple[str, float | None, float, bool]] = []
    if report.engine == "pattern":
        micro = report.micro(PATTERN_TYPES).recall
        out.append(("micro recall, pattern types", micro, PATTERN_MICRO_RECALL_TARGET,
                    micro is not None and micro >= PATTERN_MICRO_RECALL_TARGET))
        for entity in PATTERN_TYPES:
            if entity in report.per_type and report.per_type[entity].gold:
                r = report.per_type[entity].recall
                out.append((f"recall {entity}", r, PATTERN_TYPE_RECALL_FLOOR,
                            r is not None and r >= PATTERN_TYPE_RECALL_FLOOR))
    if report.engine == "ner" and "PERSON" in report.per_type:
        r = report.per_type["PERSON"].recall
        out.append(("recall PERSON", r, PERSON_RECALL_TARGET, r is not None and r >= PERSON_RECALL_TARGET))
    return out


def format_report(report: Report, max_errors: int = 40) -> str:
    lines = [
        f"engine {report.engine}: {report.sentences} sentences ({report.pii_sentences} with PII, "
        f"{report.negatives} hard negatives); entities {', '.join(report.entities)}; "
        f"threshold {Redaction().score_threshold}"
        + (f"; built in {report.build_s:.1f} s" if report.build_s is not None else ""),
        f"  {'type':<22} {'gold':>5} {'pred':>5} {'TP':>5} {'found':>5}  {'prec':>6} {'recall':>6} {'exact':>6}",
    ]
    for entity, score in report.per_type.items():
        lines.append(_row(entity, score))
    for entity, n in sorted(report.untargeted_gold.items()):
        lines.append(f"  {entity:<22} {n:>5}  (not targeted by this engine)")
    lines.append(_row("micro, all targeted", report.micro()))
    if set(report.per_type) - set(PATTERN_TYPES):
        lines.append(_row("micro, pattern types", report.micro(PATTERN_TYPES)))
    lines.append(f"  hard negatives: {report.negative_fp} false positives in {report.negatives_with_fp} "
                 f"of {report.negatives} sentences")
    if report.latency:
        lat = report.latency
        lines.append(f"  latency per request: median {lat.median_ms:.2f} ms, p95 {lat.p95_ms:.2f} ms, "
                     f"mean {lat.mean_ms:.2f} ms, max {lat.max_ms:.2f} ms ({lat.calls} calls, "
                     f"{lat.rounds} rounds after 1 warm-up round)")
    for what, measured, target, met in targets(report):
        shown = "n/a" if measured is None else f"{measured:.3f}"
        lines.append(f"  target {what}: {shown} (>= {target}) {'met' if met else 'MISSED'}")
    if report.misses:
        lines.append(f"  missed gold spans ({len(report.misses)}):")
        for m in report.misses[:max_errors]:
            other = f" (found as {', '.join(m.found_as)})" if m.found_as else ""
            lines.append(f"    {m.item_id} {m.entity:<14} {m.format:<24} {m.value!r}{other}")
        if len(report.misses) > max_errors:
            lines.append(f"    ... {len(report.misses) - max_errors} more (--max-errors)")
    if report.false_positives:
        lines.append(f"  false positives ({len(report.false_positives)}):")
        for fp in report.false_positives[:max_errors]:
            other = f" (overlaps gold {fp.overlaps_gold})" if fp.overlaps_gold else ""
            lines.append(f"    {fp.item_id} {fp.entity:<14} {fp.score:.2f} {fp.value!r}{other}")
        if len(report.false_positives) > max_errors:
            lines.append(f"    ... {len(report.false_positives) - max_errors} more (--max-errors)")
    if report.inexact:
        lines.append(f"  found with other boundaries ({len(report.inexact)}):")
        for i in report.inexact[:max_errors]:
            shown = ", ".join(map(repr, i.predicted))
            lines.append(f"    {i.item_id} {i.entity:<14} gold {i.value!r}, predicted {shown}")
        if len(report.inexact) > max_errors:
            lines.append(f"    ... {len(report.inexact) - max_errors} more (--max-errors)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Precision/recall per entity type and latency of the PII engines.")
    parser.add_argument("--engine", choices=[*ENGINES, "all"], default="all")
    parser.add_argument("--data", type=Path, default=DATA_FILE)
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the set (0: no timing)")
    parser.add_argument("--max-errors", type=int, default=40, help="misses and false positives listed per engine")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = parser.parse_args(argv)

    items = load_set(args.data)
    engines: list[PiiEngine] = list(ENGINES) if args.engine == "all" else [args.engine]
    reports = [run(engine, items, args.rounds) for engine in engines]
    if args.json:
        print(json.dumps({"data": str(args.data), "reports": [r.to_json() for r in reports],
                          "targets": {r.engine: [{"what": w, "measured": m, "target": t, "met": ok}
                                                 for w, m, t, ok in targets(r)] for r in reports}}, indent=2))
    else:
        print("\n\n".join(format_report(r, args.max_errors) for r in reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
