"""`gateway replay`: reading the logged row (SQL built only from a parsed UUID) and the refusals, each
saying what to do next."""

from __future__ import annotations

import pytest

from infra.operator.replay_record import (
    BODY_TTL_DAYS,
    ReplayRefused,
    check_replayable,
    parse_request_id,
    plan_query,
    row_query,
)
from tests.unit.infra.operator.replay_rows import REQUEST_ID, logged


def test_a_request_id_is_parsed_before_it_reaches_sql() -> None:
    assert parse_request_id(f"  {REQUEST_ID.upper()} ") == REQUEST_ID
    assert f"WHERE request_id = '{REQUEST_ID}'" in row_query(REQUEST_ID)
    assert "FROM requests FINAL" in row_query(REQUEST_ID)
    assert "type = 'route.planned'" in plan_query(REQUEST_ID)
    for bad in ("abc", "' OR 1=1 --", f"{REQUEST_ID}'; DROP TABLE requests"):
        with pytest.raises(ReplayRefused, match="not a request id"):
            row_query(bad)


def test_a_uuid7_bounds_the_partitions_read() -> None:
    made_ms = int(REQUEST_ID.replace("-", "")[:12], 16)
    assert f"ts >= fromUnixTimestamp64Milli(toInt64({made_ms - 3_600_000}), 'UTC')" in row_query(REQUEST_ID)
    assert "ts >=" in plan_query(REQUEST_ID)
    assert "ts >=" not in row_query("9b2f6a52-4a8e-4c1d-9f5e-2a7c8d9e0f11")  # a v4 id carries no time


def test_the_row_becomes_a_logged_request() -> None:
    row = logged(cost_usd=None, tags={"team": "x"})
    assert row.target == "mock-openai/gpt-4o-mini"
    assert row.cost_usd is None and row.tags == {"team": "x"}
    assert row.body()["messages"][0]["content"] == "Hello <PERSON_1>"
    assert logged(provider="").target == ""


def test_chat_messages_and_embeddings_are_replayable() -> None:
    for endpoint in ("chat.completions", "messages", "embeddings"):
        check_replayable(logged(endpoint=endpoint))
    check_replayable(logged(stream=True))


def test_a_body_cleared_by_its_ttl() -> None:
    with pytest.raises(ReplayRefused, match=f"cleared by the {BODY_TTL_DAYS}-day TTL.*last {BODY_TTL_DAYS} days"):
        check_replayable(logged(request_body="", age_s=BODY_TTL_DAYS * 86_400 + 5))


def test_a_request_ended_before_redaction_has_no_body() -> None:
    with pytest.raises(ReplayRefused, match="no recorded body: it ended before the redaction stage.*401"):
        check_replayable(logged(request_body="", status_code=401, error_code="invalid_api_key"))


def test_a_batch_line_is_refused_with_what_to_do() -> None:
    with pytest.raises(ReplayRefused, match="line of batch batch_1.*gateway batch submit"):
        check_replayable(logged(batch_id="batch_1"))


def test_an_unknown_endpoint_is_refused() -> None:
    with pytest.raises(ReplayRefused, match="'responses' request"):
        check_replayable(logged(endpoint="responses"))


def test_a_body_that_is_not_an_object() -> None:
    with pytest.raises(ReplayRefused, match="not a JSON object"):
        logged(request_body="[1]").body()
