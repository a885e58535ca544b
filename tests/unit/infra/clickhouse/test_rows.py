"""The row builders alone, no engine: every row has its table's columns, values are checked or clamped
to their column types. What the engine makes of the rows: ``test_store.py``, ``test_store_verdicts.py``."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from infra.clickhouse.rows import (
    COMPLETED_EVENT_TYPE,
    EVENT_COLUMNS,
    GATEWAY_EVENT_COLUMNS,
    INVALID_FINDING_TYPE,
    REQUEST_COLUMNS,
    VERDICT_COLUMNS,
    column_major,
    completed_event_row,
    event_row,
    gateway_event_row,
    guardrail_verdict_rows,
    request_row,
    timestamp_ms,
    uuid_text,
)
from schemas.ids import uuid7

from .factories import completed, control_event, stage_event, verdict


def named(columns: tuple[str, ...], row: tuple[object, ...]) -> dict[str, object]:
    assert len(row) == len(columns)
    return dict(zip(columns, row, strict=True))


def test_every_row_has_its_tables_columns() -> None:
    rc = completed(verdicts=[verdict("a"), verdict("b")])
    ts = timestamp_ms(rc.ts)
    assert len(event_row(stage_event(rc.request_id))) == len(EVENT_COLUMNS)
    assert len(completed_event_row(rc, rc.event_id, rc.request_id, ts)) == len(EVENT_COLUMNS)
    assert len(request_row(rc, rc.event_id, rc.request_id, ts)) == len(REQUEST_COLUMNS)
    assert [len(r) for r in guardrail_verdict_rows(rc, rc.request_id, ts)] == [len(VERDICT_COLUMNS)] * 2
    assert len(gateway_event_row(control_event())) == len(GATEWAY_EVENT_COLUMNS)


@pytest.mark.parametrize("value", ["not-a-uuid", "", "0" * 32])
def test_uuid_text_refuses_what_is_not_a_hyphenated_uuid(value: str) -> None:
    with pytest.raises(ValueError):
        uuid_text(value)


def test_uuid_text_keeps_the_string() -> None:
    value = uuid7()
    assert uuid_text(value) is value


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0, 1e13])
def test_timestamp_ms_refuses_what_datetime64_cannot_hold(seconds: float) -> None:
    with pytest.raises(ValueError):
        timestamp_ms(seconds)


def test_request_row_clamps_and_unprices() -> None:
    rc = completed(cost_usd="12345678901.5", prompt_tokens=2**40, attempts=1000, status_code=-3)
    row = named(REQUEST_COLUMNS, request_row(rc, rc.event_id, rc.request_id, timestamp_ms(rc.ts)))
    assert (row["cost_usd"], row["prompt_tokens"], row["attempts"], row["status_code"]) == (None, 2**32 - 1, 255, 0)
    priced = completed(cost_usd="0.00012345")
    row = named(REQUEST_COLUMNS, request_row(priced, priced.event_id, priced.request_id, timestamp_ms(priced.ts)))
    assert row["cost_usd"] == Decimal("0.000123450")


def test_request_row_keeps_the_most_severe_outcome_per_guardrail() -> None:
    rc = completed(verdicts=[verdict("g", outcome="flag"), verdict("g", outcome="block"), verdict("g", outcome="pass")])
    row = named(REQUEST_COLUMNS, request_row(rc, rc.event_id, rc.request_id, timestamp_ms(rc.ts)))
    assert row["guardrail_outcomes"] == {"g": "block"}


def test_stage_event_takes_the_owners_tenant_when_it_knew_none() -> None:
    rc = completed(tenant="acme", api_key_id="k9")
    row = named(EVENT_COLUMNS, event_row(stage_event(rc.request_id, tenant="", api_key_id=""), rc))
    assert (row["tenant"], row["api_key_id"]) == ("acme", "k9")


def test_completed_event_row_is_a_request_completed_event() -> None:
    rc = completed(status_code=502)
    row = named(EVENT_COLUMNS, completed_event_row(rc, rc.event_id, rc.request_id, timestamp_ms(rc.ts)))
    assert (row["type"], row["status"]) == (COMPLETED_EVENT_TYPE, "error")


def test_finding_types_that_may_be_values_are_counted_not_kept(caplog: pytest.LogCaptureFixture) -> None:
    leaked = "john.doe@example.com"
    rc = completed(verdicts=[verdict("terms", findings={leaked: 2, "rule_7": 3, "EMAIL_ADDRESS": 70_000})])
    with caplog.at_level(logging.WARNING, logger="infra.clickhouse.rows"):
        (row,) = guardrail_verdict_rows(rc, rc.request_id, timestamp_ms(rc.ts))
    assert named(VERDICT_COLUMNS, row)["findings"] == {INVALID_FINDING_TYPE: 2, "rule_7": 3, "EMAIL_ADDRESS": 65_535}
    assert "1 finding type(s)" in caplog.text and leaked not in caplog.text


def test_column_major() -> None:
    assert column_major([(1, "a"), (2, "b")]) == [[1, 2], ["a", "b"]]
    assert column_major([]) == []
