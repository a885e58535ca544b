"""``gateway replay``'s output: the original and the replay (or the dry run's plan) side by side, as a
table for people and as JSON (``--json``) for scripts.

Pure: every value comes in, text comes out. Rows that decide whether a change of config changed the
request's fate (route, plan, status, error, attempts, config) are marked ``*`` when the two sides
differ; cost and latency always differ a little and are left for the reader to weigh.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.operator.replay_plan import PlannedRoute, PlannedStep
from infra.operator.replay_record import LoggedRequest

COMPARED = frozenset({"route", "route path", "plan", "status", "error", "attempts", "experiment", "variant"})
NOT_CALLED = "(no provider called)"


@dataclass(frozen=True)
class Line:
    label: str
    old: str
    new: str
    compare: bool = True
    """False where the right side is no value to compare (a dry run calls no provider)."""

    @property
    def changed(self) -> bool:
        return self.compare and self.label in COMPARED and self.old != self.new


def cost_text(cost_usd: str | None) -> str:
    return "unpriced" if cost_usd is None else f"${cost_usd.rstrip('0').rstrip('.') or '0'}"


def status_text(row: LoggedRequest) -> str:
    return str(row.status_code)


def error_text(row: LoggedRequest) -> str:
    return f"{row.error_code or row.error_type}" if row.status_code >= 400 or row.error_code else ""


def plan_text(targets: Sequence[str]) -> str:
    return " > ".join(targets) if targets else "(not recorded)"


def step_text(step: PlannedStep) -> str:
    marks = {"open": " (breaker open: skipped)", "half_open": " (breaker half-open: probe)"}
    return step.target + marks.get(step.breaker, "")


def live_lines(old: LoggedRequest, old_plan: Sequence[str], new: LoggedRequest,
               new_plan: Sequence[str]) -> list[Line]:
    """Original against replay, row against row."""
    return [
        Line("request id", old.request_id, new.request_id),
        Line("tenant / key", f"{old.tenant} / {old.api_key_id}", f"{new.tenant} / {new.api_key_id}"),
        Line("route", old.target or "(none)", new.target or "(none)"),
        Line("route path", old.route_path or "(none)", new.route_path or "(none)"),
        Line("plan", plan_text(old_plan), plan_text(new_plan)),
        Line("experiment", old.experiment, new.experiment),
        Line("variant", old.variant, new.variant),
        Line("status", status_text(old), status_text(new)),
        Line("error", error_text(old), error_text(new)),
        Line("attempts", str(old.attempts), str(new.attempts)),
        Line("tokens in / out", f"{old.prompt_tokens} / {old.completion_tokens}",
             f"{new.prompt_tokens} / {new.completion_tokens}"),
        Line("cost", cost_text(old.cost_usd), cost_text(new.cost_usd)),
        Line("latency", f"{old.latency_ms:.1f} ms", f"{new.latency_ms:.1f} ms"),
        Line("config version", old.config_version or "(none)", new.config_version or "(none)"),
        Line("when", old.ts, new.ts),
    ]


def dry_lines(old: LoggedRequest, old_plan: Sequence[str], planned: PlannedRoute) -> list[Line]:
    """Original against the planned route (nothing called: no status, cost or latency on the right)."""
    kept = [step_text(s) for s in planned.steps]
    lines = [
        Line("request id", old.request_id, "(dry run)"),
        Line("route", old.target or "(none)", planned.first or "(none)"),
        Line("route path", old.route_path or "(none)", planned.path or "(none)"),
        Line("plan", plan_text(old_plan), " > ".join(kept) if kept else "(empty)"),
        Line("experiment", old.experiment, planned.experiment),
        Line("variant", old.variant, planned.variant),
        Line("status", status_text(old), str(planned.error_status) if planned.error_status else NOT_CALLED,
             compare=bool(planned.error_status)),
        Line("error", error_text(old), planned.error_code, compare=bool(planned.error_status)),
        Line("attempts", str(old.attempts), NOT_CALLED, compare=False),
        Line("cost", cost_text(old.cost_usd), NOT_CALLED),
        Line("latency", f"{old.latency_ms:.1f} ms", NOT_CALLED),
        Line("config version", old.config_version or "(none)", planned.config_version),
    ]
    if planned.skipped:
        lines.insert(4, Line("policy skipped", "", ", ".join(f"{k} ({v})" for k, v in planned.skipped.items())))
    return lines


def render_table(title: str, headings: tuple[str, str], lines: Sequence[Line], notes: Sequence[str] = ()) -> str:
    """``title``, then one line per compared field: label, original, replay, ``*`` when they differ. A
    field empty on both sides (no experiment, no error) is left out."""
    lines = [line for line in lines if line.old or line.new]
    label_w = max(len(line.label) for line in lines)
    old_w = max(len(headings[0]), *(len(line.old) for line in lines))
    out = [title, "", f"  {'':<{label_w}}  {headings[0]:<{old_w}}  {headings[1]}"]
    out.append(f"  {'':<{label_w}}  {'-' * old_w}  {'-' * max(len(headings[1]), 8)}")
    for line in lines:
        out.append(f"{'*' if line.changed else ' '} {line.label:<{label_w}}  {line.old:<{old_w}}  {line.new}".rstrip())
    if any(line.changed for line in lines):
        out.append("\n* differs")
    if notes:
        out.append("")
        out.extend(f"note: {note}" for note in notes)
    return "\n".join(out)


def title_of(old: LoggedRequest) -> str:
    return (f"replay of {old.request_id}: {old.endpoint}{' (stream)' if old.stream else ''}, model "
            f"{old.model_requested}, {old.ts}")


def row_json(row: LoggedRequest, plan: Sequence[str]) -> dict[str, Any]:
    """The compared fields of one row, for ``--json``."""
    return {"request_id": row.request_id, "ts": row.ts, "tenant": row.tenant, "api_key_id": row.api_key_id,
            "endpoint": row.endpoint, "stream": row.stream, "model_requested": row.model_requested,
            "route": row.target, "route_path": row.route_path, "plan": list(plan),
            "experiment": row.experiment, "variant": row.variant, "status": row.status_code,
            "error_code": row.error_code, "error_type": row.error_type, "attempts": row.attempts,
            "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
            "cost_usd": row.cost_usd, "latency_ms": row.latency_ms, "config_version": row.config_version,
            "tags": row.tags}


def planned_json(planned: PlannedRoute) -> dict[str, Any]:
    return {"route": planned.first, "route_path": planned.path, "error_status": planned.error_status or None,
            "error_code": planned.error_code, "error": planned.error,
            "plan": [{"target": s.target, "path": s.path, "breaker": s.breaker} for s in planned.steps],
            "policy_skipped": planned.skipped, "experiment": planned.experiment, "variant": planned.variant,
            "config_version": planned.config_version, "config_source": planned.config_source}


def render_live(old: LoggedRequest, old_plan: Sequence[str], new: LoggedRequest, new_plan: Sequence[str],
                notes: Sequence[str] = ()) -> str:
    return render_table(title_of(old), ("original", "replay"), live_lines(old, old_plan, new, new_plan), notes)


def render_dry(old: LoggedRequest, old_plan: Sequence[str], planned: PlannedRoute) -> str:
    heading = f"dry run: config {planned.config_version} ({planned.config_source})"
    notes = [f"the chain would refuse it: {planned.error}", *planned.notes] if planned.error else planned.notes
    return render_table(title_of(old), ("original", heading), dry_lines(old, old_plan, planned), notes)
