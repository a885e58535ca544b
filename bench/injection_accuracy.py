"""Prompt-injection rules on the labelled set, and the per-prompt cost of each input guardrail.

    .venv/bin/python -m bench.injection_accuracy [--threshold 0.5] [--show]

Prints the detection rate (attacks at or above the threshold) and the false-positive rate (benign
prompts at or above it) on ``tests/unit/stages/guardrails/data/injection_cases.jsonl``, then the CPU
cost per check of ``prompt_injection``, ``secrets``, ``blocked_terms`` and ``response_format`` on a
200-character and a 2 KB benign prompt (best of several runs, microseconds).
"""

from __future__ import annotations

import argparse
import json
import timeit
from pathlib import Path
from typing import Any

from schemas.guardrails import GuardrailSpec
from stages.guardrails.base import Guardrail, Subject
from stages.guardrails.runner import GuardrailSet, build

CASES = Path(__file__).resolve().parents[1] / "tests/unit/stages/guardrails/data/injection_cases.jsonl"

PROMPT_200 = ("Can you help me write a short email to my landlord asking whether the heating in the flat can be "
              "checked before winter? Please keep it polite and mention that the radiator in the bedroom makes noise.")
_PARAGRAPH = ("Our team is migrating a billing service from a monolith to several smaller services. The current "
              "system handles invoices, refunds and tax calculation in one database. We want to split the refunds "
              "into their own service, keep the invoice history consistent and avoid downtime during the switch. ")
PROMPT_2K = (_PARAGRAPH * 8)[:2048]


def subject_of(case: dict[str, Any]) -> Subject:
    if case["role"] == "tool":
        messages = [{"role": "user", "content": "Summarise the result."},
                    {"role": "tool", "tool_call_id": "t1", "content": case["text"]}]
    else:
        messages = [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": case["text"]}]
    return Subject(phase="input", request={"model": "m", "messages": messages})


def accuracy(threshold: float, show: bool) -> None:
    guard = build(GuardrailSpec(use="prompt_injection")).guardrail
    cases = [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]
    hits = {"attack": 0, "benign": 0}
    totals = {"attack": 0, "benign": 0}
    for case in cases:
        result = guard.check(subject_of(case))
        flagged = result.score >= threshold
        totals[case["label"]] += 1
        hits[case["label"]] += flagged
        wrong = flagged != (case["label"] == "attack")
        if show and (wrong or result.findings):
            mark = "MISS" if wrong else "ok  "
            print(f"{mark} {case['id']} {result.score:.2f} {result.findings} {case['text'][:60]!r}")
    print(f"prompt_injection @ {threshold}: detection {hits['attack']}/{totals['attack']} = "
          f"{hits['attack'] / totals['attack']:.3f}; false positives {hits['benign']}/{totals['benign']} = "
          f"{hits['benign'] / totals['benign']:.3f}")


def cost_us(guard: Guardrail, subject: Subject, number: int = 5000) -> float:
    return min(timeit.repeat(lambda: guard.check(subject), number=number, repeat=5)) / number * 1e6


def costs() -> None:
    guards = {
        "prompt_injection": build(GuardrailSpec(use="prompt_injection")).guardrail,
        "secrets": build(GuardrailSpec(use="secrets")).guardrail,
        "blocked_terms (20 terms, 2 patterns)": build(GuardrailSpec(use="blocked_terms", settings={
            "terms": [f"codename{i}" for i in range(18)] + ["project falcon", "acme corp"],
            "patterns": {"ticket": r"\bJIRA-\d+\b", "badge": r"\bEMP-\d{6}\b"}})).guardrail,
    }
    for label, text in (("200 chars", PROMPT_200), ("2 KB", PROMPT_2K)):
        subject = Subject(phase="input", request={"model": "m", "messages": [
            {"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": text}]})
        for name, guard in guards.items():
            print(f"{name:40s} {label:9s} {cost_us(guard, subject):7.1f} µs")
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {
        "type": "string"}}}, "required": ["name", "tags"]}
    answer = json.dumps({"name": "Ada Lovelace", "tags": [f"tag{i}" for i in range(20)]})
    output = Subject(phase="output", answer=answer, request={"response_format": {
        "type": "json_schema", "json_schema": {"name": "p", "schema": schema}}})
    print(f"{'response_format (json_schema, cached)':40s} {len(answer)} B    "
          f"{cost_us(build(GuardrailSpec(use='response_format')).guardrail, output):7.1f} µs")
    whole = GuardrailSet([GuardrailSpec(use="prompt_injection"), GuardrailSpec(use="secrets")])
    subject = Subject(phase="input", request={"model": "m", "messages": [{"role": "user", "content": PROMPT_200}]})
    runs = 5000
    per_run = min(timeit.repeat(lambda: whole.run(subject), number=runs, repeat=5)) / runs * 1e6
    print(f"{'GuardrailSet.run (injection + secrets)':40s} {'200 chars':9s} {per_run:7.1f} µs (verdicts included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--show", action="store_true", help="print every case with findings or a wrong call")
    args = parser.parse_args()
    accuracy(args.threshold, args.show)
    costs()


if __name__ == "__main__":
    main()
