"""``StageAttrs``/``ControlAttrs`` write exactly what the former ``dict[str, Any]`` attrs wrote.

Each case is one producer's attrs: the dict it built before the attrs were typed (keys in its order)
and the struct it builds now. The stored text (the ``attrs`` column) must be the same bytes, after the
trip the event makes: encoded by the stage, decoded by the sink, written by ``infra/clickhouse/rows.py``.
Values of 0, "", [], False and None are in the cases: a key set to one is still written."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from infra.clickhouse.rows import event_row, gateway_event_row
from schemas.events import CallAttempt, ControlAttrs, ControlEvent, EventType, StageAttrs, StageEvent
from schemas.wire import decode, encode

ATTEMPT = {"target": "openai/gpt-4o", "status": 502, "code": "upstream_error", "ms": 12.345, "upstream_status": None}
CALL = CallAttempt(target="openai/gpt-4o", status=502, code="upstream_error", ms=12.345, upstream_status=None)

STAGE_CASES: list[tuple[str, dict[str, Any], StageAttrs]] = [
    ("route.planned", {"targets": ["a", "b"]}, StageAttrs(targets=["a", "b"])),
    ("route.planned, every key", {"targets": ["b"], "breaker_open": ["a"], "probe": "b", "experiment": "e",
                                  "variant": ""},
     StageAttrs(targets=["b"], breaker_open=["a"], probe="b", experiment="e", variant="")),
    ("provider.failed", {"attempts": [ATTEMPT, ATTEMPT], "error_code": None, "status": 502},
     StageAttrs(attempts=[CALL, CALL], error_code=None, status=502)),
    ("provider.called", {"provider": "openai", "model": None, "attempts": [], "provider_ms": 0.0},
     StageAttrs(provider="openai", model=None, attempts=[], provider_ms=0.0)),
    ("provider.stream_failed", {"error_code": "stream_broken", "chunks": 0},
     StageAttrs(error_code="stream_broken", chunks=0)),
    ("<stage>.failed", {"error_type": "invalid_request_error", "error_code": None, "status": 400},
     StageAttrs(error_type="invalid_request_error", error_code=None, status=400)),
    ("request.rerun_skipped", {"reason": "client_gone"}, StageAttrs(reason="client_gone")),
    ("response.filtered", {"findings": {}}, StageAttrs(findings={})),
    ("response.filtered (stream)", {"findings": {"EMAIL_ADDRESS": 2}, "chunks": 7},
     StageAttrs(findings={"EMAIL_ADDRESS": 2}, chunks=7)),
    ("response.stream_failed", {"error_code": "timeout"}, StageAttrs(error_code="timeout")),
    ("request.authorized", {"input_chars": 0, "guardrail_profile": "default"},
     StageAttrs(input_chars=0, guardrail_profile="default")),
    ("request.authorized, triggered", {"input_chars": 31, "guardrail_profile": "strict",
                                       "guardrails_triggered": ["prompt_injection"]},
     StageAttrs(input_chars=31, guardrail_profile="strict", guardrails_triggered=["prompt_injection"])),
    ("request.redacted", {"counts": {"PERSON": 1}, "profile": "", "redelivered": False},
     StageAttrs(counts={"PERSON": 1}, profile="", redelivered=False)),
    ("no attrs", {}, StageAttrs()),
]

CONTROL_CASES: list[tuple[str, dict[str, Any], ControlAttrs]] = [
    ("breaker opened", {"ok": 0, "fail": 5, "window_s": 30.0, "cooldown_s": 10.0, "opens": 1, "revision": 3},
     ControlAttrs(ok=0, fail=5, window_s=30.0, cooldown_s=10.0, opens=1, revision=3)),
    ("breaker half-open", {"cooldown_s": 2.5, "opens": 2, "probes": 1, "revision": 4},
     ControlAttrs(cooldown_s=2.5, opens=2, probes=1, revision=4)),
    ("probe failed", {"passed": 0, "cooldown_s": 20.0, "opens": 2, "revision": 5},
     ControlAttrs(passed=0, cooldown_s=20.0, opens=2, revision=5)),
    ("probes passed", {"passed": 1, "opens": 2, "revision": 6}, ControlAttrs(passed=1, opens=2, revision=6)),
    ("config initial", {"initial": True}, ControlAttrs(initial=True)),
    ("config callbacks", {"callback_errors": ["failing_cb: boom"]}, ControlAttrs(callback_errors=["failing_cb: boom"])),
    ("config apply", {"file": "/tmp/gw.yaml"}, ControlAttrs(file="/tmp/gw.yaml")),
    ("config applied by gateway up", {}, ControlAttrs()),
]


def _stored_before(attrs: dict[str, Any]) -> str:
    """The former sink's ``_attrs_json`` of the dict as it arrived over the wire."""
    arrived = orjson.loads(encode(attrs))
    return orjson.dumps(arrived, default=str, option=orjson.OPT_NON_STR_KEYS).decode() if arrived else "{}"


def _stage(attrs: Any) -> StageEvent:
    return StageEvent(event_id="01900000-0000-7000-8000-000000000001",
                      request_id="01900000-0000-7000-8000-000000000002", ts=1.0, stage="s",
                      type=EventType.ROUTE_PLANNED, attrs=attrs)


@pytest.mark.parametrize(("case", "before", "now"), STAGE_CASES, ids=[c[0] for c in STAGE_CASES])
def test_stage_attrs_are_stored_as_before(case: str, before: dict[str, Any], now: StageAttrs) -> None:
    arrived = decode(encode(_stage(now)), StageEvent)  # what the sink reads
    assert arrived.attrs == now
    stored = event_row(arrived)[10]
    assert stored == _stored_before(before), case
    assert decode(encode(_stage(before)), StageEvent).attrs == now  # an event from before reads as the struct


@pytest.mark.parametrize(("case", "before", "now"), CONTROL_CASES, ids=[c[0] for c in CONTROL_CASES])
def test_control_attrs_are_stored_as_before(case: str, before: dict[str, Any], now: ControlAttrs) -> None:
    event = ControlEvent(event_id="01900000-0000-7000-8000-000000000003", ts=1.0, kind="breaker", subject="t",
                         attrs=now)
    arrived = decode(encode(event), ControlEvent)
    assert arrived.attrs == now
    assert gateway_event_row(arrived)[9] == _stored_before(before), case


def test_an_unknown_attrs_key_is_refused_on_the_wire() -> None:
    with pytest.raises(Exception, match="unknown field"):
        decode(encode(_stage({"rule": "x"})), StageEvent)
