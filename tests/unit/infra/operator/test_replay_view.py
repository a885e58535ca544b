"""`gateway replay`'s output: the side-by-side table (changed rows marked), and the JSON for scripts."""

from __future__ import annotations

import json

from infra.operator.replay_plan import PlannedRoute, PlannedStep
from infra.operator.replay_view import cost_text, planned_json, render_dry, render_live, row_json
from tests.unit.infra.operator.replay_rows import logged

OLD_PLAN = ["mock-openai/gpt-4o-mini", "mock-anthropic/claude-3-5-haiku-latest"]


def line(text: str, label: str) -> str:
    return next(row for row in text.splitlines() if row[2:].startswith(label + " "))


def test_live_side_by_side() -> None:
    old = logged()
    new = logged(request_id="01a24340-0000-7000-8000-000000000001", latency_ms=38.25, cost_usd="0.000012300",
                 tags={"team": "search", "replay_of": old.request_id})
    text = render_live(old, OLD_PLAN, new, OLD_PLAN)
    assert text.splitlines()[0] == f"replay of {old.request_id}: chat.completions, model gpt-4o-mini, {old.ts}"
    assert line(text, "request id").split()[-2:] == [old.request_id, new.request_id]
    assert line(text, "latency").split()[-4:] == ["41.5", "ms", "38.2", "ms"]
    assert line(text, "cost").split()[-2:] == ["$0.0000123", "$0.0000123"]
    assert not any(row.startswith("*") for row in text.splitlines())  # nothing that decides the fate changed
    assert "* differs" not in text
    assert "experiment" not in text and "error" not in text  # empty on both sides: left out


def test_a_changed_route_and_status_are_marked() -> None:
    old = logged()
    new = logged(request_id="01a24340-0000-7000-8000-000000000002", provider="mock-anthropic",
                 model_served="claude-3-5-haiku-latest", route_path="targets.children.1", status_code=200,
                 attempts=3)
    text = render_live(old, OLD_PLAN, new, OLD_PLAN[1:], ["a note"])
    for label in ("route", "route path", "plan", "attempts"):
        assert line(text, label).startswith("*"), label
    assert not line(text, "status").startswith("*")
    assert "* differs" in text and "note: a note" in text


def test_dry_run_side_by_side() -> None:
    planned = PlannedRoute("v2", "file:cand.yaml", [PlannedStep(OLD_PLAN[0], "targets.children.0", "open"),
                                                    PlannedStep(OLD_PLAN[1], "targets.children.1")],
                           notes=["headers are not recorded"])
    text = render_dry(logged(), OLD_PLAN, planned)
    assert "dry run: config v2 (file:cand.yaml)" in text
    assert line(text, "route").startswith("*") and line(text, "route").endswith(OLD_PLAN[1])
    assert "(breaker open: skipped)" in line(text, "plan")
    assert line(text, "cost").endswith("(no provider called)")
    assert not line(text, "status").startswith("*")  # nothing was called: nothing to compare
    assert "note: headers are not recorded" in text


def test_a_dry_run_refusal_is_shown_as_the_chains_answer() -> None:
    planned = PlannedRoute("v2", "s", error_status=404, error_code="model_not_found", error="no such model")
    text = render_dry(logged(), OLD_PLAN, planned)
    assert line(text, "status").startswith("*") and line(text, "status").endswith("404")
    assert line(text, "error").endswith("model_not_found")
    assert "note: the chain would refuse it: no such model" in text


def test_json_documents() -> None:
    old = logged(cost_usd=None)
    document = row_json(old, OLD_PLAN)
    assert document["cost_usd"] is None and document["plan"] == OLD_PLAN and document["route"] == OLD_PLAN[0]
    planned = planned_json(PlannedRoute("v2", "s", [PlannedStep(OLD_PLAN[0], "p", "half_open")]))
    assert planned["plan"] == [{"target": OLD_PLAN[0], "path": "p", "breaker": "half_open"}]
    assert planned["route"] == OLD_PLAN[0] and planned["error_status"] is None
    json.dumps({"o": document, "p": planned})  # plain JSON


def test_cost_text() -> None:
    assert cost_text(None) == "unpriced"
    assert cost_text("0.000000000") == "$0"
    assert cost_text("1.250000000") == "$1.25"
