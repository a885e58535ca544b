"""The guardrail audit (migration 0004) against a real embedded chDB: one ``guardrail_verdicts`` row per
verdict, written with its request, de-duplicated with it, never holding a raw value; and the README's
"Guardrail audit" queries return the expected counts.

Its own store (module scope, fresh directory): only this module's rows exist, so counts are exact.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.clickhouse import Store
from infra.clickhouse.rows import INVALID_FINDING_TYPE, VERDICT_COLUMNS
from infra.clickhouse.sqltext import Statement, split_statements
from schemas.events import Event, RequestCompleted
from schemas.ids import uuid7
from schemas.wire import replace
from tests.support.store import migrated_store

from .factories import completed, stage_event, verdict

pytestmark = pytest.mark.server

README = Path(__file__).parents[4] / "infra" / "clickhouse" / "README.md"
ROW_POLICIES = README.parent / "server" / "row_policies.sql"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with migrated_store(tmp_path_factory.mktemp("chdb_guardrails")) as s:
        yield s


def rows(store: Store, sql: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
    return store.query_readonly(sql, params).rows


def scalar(store: Store, sql: str, params: dict[str, Any] | None = None) -> Any:
    return rows(store, sql, params)[0][0]


def count_verdicts(store: Store, request_id: str, final: bool = False) -> int:
    table = "guardrail_verdicts FINAL" if final else "guardrail_verdicts"
    return int(scalar(store, f"SELECT count() FROM {table} WHERE request_id = {{id:UUID}}", {"id": request_id}))


def spy_inserts(store: Store, monkeypatch: pytest.MonkeyPatch, fail: str | None = None) -> list[str]:
    """Record the tables ``write`` inserts into; the first insert into ``fail`` raises."""
    calls: list[str] = []
    real = store._client.insert

    def spy(*args: Any, **kwargs: Any) -> Any:
        table = kwargs["context"].table.strip("`")
        calls.append(table)
        if table == fail and calls.count(table) == 1:
            raise ConnectionError("insert failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(store._client, "insert", spy)
    return calls


# -- schema --------------------------------------------------------------------------------------


def test_0004_creates_the_table_and_the_request_columns(store: Store) -> None:
    assert scalar(store, "SELECT count() FROM schema_migrations WHERE version = 4 AND name = 'guardrails'") == 1
    create = scalar(store, "SHOW CREATE TABLE guardrail_verdicts")
    assert "ENGINE = ReplacingMergeTree(inserted_at)" in create
    assert "PARTITION BY toYYYYMM(ts)" in create
    assert "ORDER BY (tenant, toStartOfHour(ts), guardrail, request_id, seq)" in create
    cols = dict(rows(store, "SELECT name, type FROM system.columns WHERE table = 'requests'"))
    assert cols["guardrail_profile"] == "LowCardinality(String)"
    assert cols["guardrail_outcomes"] == "Map(LowCardinality(String), LowCardinality(String))"


def test_no_column_can_hold_a_raw_value(store: Store) -> None:
    """Findings are counts; the only free strings are labels from config and the request's metadata."""
    cols = dict(rows(store, "SELECT name, type FROM system.columns WHERE table = 'guardrail_verdicts'"))
    assert set(cols) == {*VERDICT_COLUMNS, "inserted_at"}
    assert cols["findings"] == "Map(LowCardinality(String), UInt16)"
    strings = {name for name, type_ in cols.items() if "String" in type_ and name != "findings"}
    assert strings == {"tenant", "api_key_id", "user", "model_requested", "route_path", "provider", "profile",
                       "guardrail", "kind", "phase", "outcome"}


# -- writes --------------------------------------------------------------------------------------


def test_verdict_rows_are_written_with_the_request(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ts = float(int(time.time()) - 60) + 0.25
    verdicts = [
        verdict("pii", kind="presidio", outcome="redact", score=1.0, findings={"EMAIL_ADDRESS": 2},
                duration_ms=4.5),
        verdict("injection", kind="prompt_injection", outcome="flag", score=0.75,
                findings={"ignore_previous": 1}, duration_ms=0.25),
        verdict("secrets", phase="output", duration_ms=0.125),
    ]
    rc = completed(tenant="t_write", api_key_id="key_w", user="u_7", model_requested="smart", route_path="0",
                   provider="openai", guardrail_profile="strict", verdicts=verdicts, status_code=200,
                   delivery=2, ts=ts, finished_at=ts + 1)
    calls = spy_inserts(store, monkeypatch)
    result = store.write([stage_event(rc.request_id, tenant="t_write"), rc])
    assert calls == ["events", "guardrail_verdicts", "requests"]
    assert (result.requests, result.events, result.verdicts) == (1, 2, 3)

    got = store.query_readonly(
        "SELECT * EXCEPT (inserted_at, ts, request_id) FROM guardrail_verdicts WHERE request_id = {id:UUID} "
        "ORDER BY seq", {"id": rc.request_id})
    common = {"tenant": "t_write", "api_key_id": "key_w", "user": "u_7", "model_requested": "smart",
              "route_path": "0", "provider": "openai", "profile": "strict", "status_code": 200, "delivery": 2,
              "schema_version": 1}
    assert [dict(zip(got.columns, r, strict=True)) for r in got.rows] == [
        {"seq": 0, "guardrail": "pii", "kind": "presidio", "phase": "input", "outcome": "redact", "score": 1.0,
         "findings": {"EMAIL_ADDRESS": 2}, "duration_ms": 4.5, **common},
        {"seq": 1, "guardrail": "injection", "kind": "prompt_injection", "phase": "input", "outcome": "flag",
         "score": 0.75, "findings": {"ignore_previous": 1}, "duration_ms": 0.25, **common},
        {"seq": 2, "guardrail": "secrets", "kind": "secrets", "phase": "output", "outcome": "pass", "score": 0.0,
         "findings": {}, "duration_ms": 0.125, **common},
    ]
    # ts is the request's (accepted at ingress), the same instant as its requests row
    same_ts = scalar(store, "SELECT count() FROM guardrail_verdicts v, requests r WHERE v.request_id = r.request_id "
                            "AND v.ts = r.ts AND r.request_id = {id:UUID}", {"id": rc.request_id})
    assert same_ts == 3
    request = rows(store, "SELECT guardrail_profile, guardrail_outcomes FROM requests WHERE request_id = {id:UUID}",
                   {"id": rc.request_id})
    assert request == [["strict", {"pii": "redact", "injection": "flag", "secrets": "pass"}]]


def test_a_request_without_guardrails_writes_no_verdicts(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    rc = completed(tenant="t_none")
    calls = spy_inserts(store, monkeypatch)
    assert store.write([rc]).verdicts == 0
    assert calls == ["events", "requests"]
    assert rows(store, "SELECT guardrail_profile, guardrail_outcomes FROM requests WHERE request_id = {id:UUID}",
                {"id": rc.request_id}) == [["", {}]]


def test_outcomes_keep_the_most_severe_when_a_guardrail_ran_twice(store: Store) -> None:
    rc = completed(tenant="t_twice", verdicts=[
        verdict("terms", phase="input", outcome="flag"), verdict("terms", phase="output", outcome="block"),
        verdict("terms", phase="output", outcome="redact"), verdict("fmt", phase="output"),
    ])
    assert store.write([rc]).verdicts == 4  # every verdict is a row
    outcomes = scalar(store, "SELECT guardrail_outcomes FROM requests WHERE request_id = {id:UUID}",
                      {"id": rc.request_id})
    assert outcomes == {"terms": "block", "fmt": "pass"}


def test_redelivery_does_not_double_the_verdict_rows(store: Store) -> None:
    rc = completed(tenant="t_dup", verdicts=[verdict("pii", outcome="redact"), verdict("injection")])
    again = replace(rc, event_id=uuid7(), delivery=2)
    first = store.write([rc, again])  # twice in one batch
    assert (first.requests, first.verdicts, first.duplicates) == (1, 2, 1)
    later = store.write([again])  # redelivered in a later batch
    assert (later.requests, later.verdicts, later.duplicates) == (0, 0, 1)
    assert count_verdicts(store, rc.request_id) == 2


def test_retry_after_a_failed_requests_insert_collapses_on_merge(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sink retries a failed batch whole: verdicts written before the failure are written again and
    collapse in the ReplacingMergeTree; the request id enters the dedupe set only once all succeeded."""
    rc = completed(tenant="t_retry", verdicts=[verdict("pii", outcome="redact"), verdict("injection")])
    calls = spy_inserts(store, monkeypatch, fail="requests")
    with pytest.raises(ConnectionError):
        store.write([rc])
    assert rc.request_id.lower() not in store.dedupe
    assert store.write([rc]).verdicts == 2
    assert calls == ["events", "guardrail_verdicts", "requests"] * 2
    assert count_verdicts(store, rc.request_id, final=True) == 2
    assert store.write([rc]).verdicts == 0  # now it is in the dedupe set
    store._client.command("OPTIMIZE TABLE guardrail_verdicts FINAL")
    assert count_verdicts(store, rc.request_id) == 2


def test_replacing_merge_tree_backstops_a_second_sink(store: Store) -> None:
    rc = completed(tenant="t_backstop", verdicts=[verdict("pii", outcome="redact"), verdict("injection")])
    store.write([rc])
    store.dedupe.clear()  # as if a second sink, with its own set, wrote it again
    assert store.write([rc]).verdicts == 2
    assert count_verdicts(store, rc.request_id, final=True) == 2


def test_a_finding_type_that_may_be_a_value_is_not_stored(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    leaked = "john.doe@example.com"
    rc = completed(tenant="t_leak", verdicts=[verdict("terms", outcome="flag", findings={
        leaked: 2, "ignore all previous instructions": 1, "x" * 65: 1, "rule_7": 3, "EMAIL_ADDRESS": 70_000,
    })])
    with caplog.at_level(logging.WARNING, logger="infra.clickhouse.rows"):
        store.write([rc])
    findings = scalar(store, "SELECT findings FROM guardrail_verdicts WHERE request_id = {id:UUID}",
                      {"id": rc.request_id})
    assert findings == {INVALID_FINDING_TYPE: 4, "rule_7": 3, "EMAIL_ADDRESS": 65_535}  # clamped to UInt16
    assert "3 finding type(s)" in caplog.text
    assert leaked not in caplog.text and "previous instructions" not in caplog.text
    for table in ("guardrail_verdicts", "requests", "events"):
        hits = scalar(store, f"SELECT count() FROM {table} WHERE position(toString(tuple(*)), 'john.doe') > 0")
        assert hits == 0, table


# -- README queries ------------------------------------------------------------------------------


def readme_queries() -> list[Statement]:
    block = README.read_text().split("## Guardrail audit")[1].split("```sql")[1].split("```")[0]
    return split_statements(block)


def audit_batch() -> tuple[list[Event], RequestCompleted]:
    pii = {"guardrail": "pii", "kind": "presidio"}
    inj = {"guardrail": "injection", "kind": "prompt_injection"}
    sec = {"guardrail": "secrets", "kind": "secrets", "phase": "output"}
    r1 = completed(tenant="acme", api_key_id="key_a", model_requested="smart", guardrail_profile="strict",
                   verdicts=[verdict(**pii, outcome="redact", findings={"EMAIL_ADDRESS": 2, "PHONE_NUMBER": 1},
                                     duration_ms=4.0),
                             verdict(**inj, outcome="flag", findings={"ignore_previous": 1, "role_play": 3},
                                     duration_ms=1.0),
                             verdict(**sec, duration_ms=0.5)])
    r2 = completed(tenant="acme", api_key_id="key_a", model_requested="cheap", guardrail_profile="strict",
                   stage="redaction", status_code=400,
                   verdicts=[verdict(**pii, outcome="redact", findings={"EMAIL_ADDRESS": 1}, duration_ms=6.0),
                             verdict(**inj, outcome="block", findings={"ignore_previous": 1}, duration_ms=2.0)])
    r3 = completed(tenant="acme", api_key_id="key_b", model_requested="smart", guardrail_profile="strict",
                   status_code=400,
                   verdicts=[verdict(**pii, duration_ms=5.0), verdict(**inj, duration_ms=3.0),
                             verdict(**sec, outcome="block", findings={"aws_access_key": 1}, duration_ms=1.5)])
    r4 = completed(tenant="acme", api_key_id="key_b", model_requested="smart")  # no guardrails ran
    r6 = completed(tenant="acme", api_key_id="key_c", model_requested="cheap", status_code=400,
                   verdicts=[verdict("output_filter", phase="output", outcome="block", findings={"US_SSN": 1})])
    r5 = completed(tenant="globex", api_key_id="key_g", guardrail_profile="default",
                   verdicts=[verdict(**inj, outcome="block", findings={"ignore_previous": 1})])
    redelivered = replace(r1, event_id=uuid7(), delivery=2)
    return [r1, r2, r3, r4, r5, r6, redelivered], r1


def test_readme_guardrail_queries_return_the_expected_counts(store: Store) -> None:
    batch, r1 = audit_batch()
    result = store.write(batch)
    assert (result.requests, result.verdicts, result.duplicates) == (6, 10, 1)
    statements = readme_queries()
    assert len(statements) == 7
    blocks, flag_rate, redacted, rules, output_blocks, latency, one_request = (
        store.query_readonly(s.text, {"id": r1.request_id}) for s in statements
    )
    assert blocks.columns == ["tenant", "guardrail", "phase", "blocks"]
    tenants = ("acme", "globex")
    assert [r for r in blocks.rows if r[0] in tenants] == [
        ["acme", "injection", "input", 1], ["acme", "output_filter", "output", 1], ["acme", "secrets", "output", 1],
        ["globex", "injection", "input", 1],
    ]
    assert flag_rate.rows == [["key_a", 2, 1, 0.5], ["key_b", 2, 0, 0], ["key_c", 1, 0, 0]]
    assert redacted.rows == [["cheap", "EMAIL_ADDRESS", 1, 1], ["smart", "EMAIL_ADDRESS", 2, 1],
                             ["smart", "PHONE_NUMBER", 1, 1]]
    assert rules.columns == ["rule", "hits", "requests", "blocked", "flagged"]
    assert rules.rows == [["role_play", 3, 1, 0, 1], ["ignore_previous", 2, 2, 1, 1]]
    got = [dict(zip(output_blocks.columns, r, strict=True)) for r in output_blocks.rows]
    assert sorted((r["api_key_id"], r["route"], r["guardrail"], r["findings"]) for r in got) == [
        ("key_b", "smart", "secrets", {"aws_access_key": 1}), ("key_c", "cheap", "output_filter", {"US_SSN": 1})]
    per_guardrail = {(r[0], r[2]): r[3] for r in latency.rows}
    assert per_guardrail == {("pii", "input"): 3, ("injection", "input"): 3, ("secrets", "output"): 2,
                             ("output_filter", "output"): 1}
    assert latency.rows[0][0] == "pii"  # slowest p99 first
    assert [(r[0], r[2], r[4]) for r in one_request.rows] == [
        (0, "pii", "redact"), (1, "injection", "flag"), (2, "secrets", "pass")]


def test_row_policies_cover_the_verdicts() -> None:
    text = ROW_POLICIES.read_text()
    code = " ".join(s.code for s in split_statements(text))
    assert "GRANT SELECT ON guardrail_verdicts TO gateway_analyst" in code
    assert "CREATE ROW POLICY IF NOT EXISTS gateway_all_tenants ON guardrail_verdicts" in " ".join(code.split())
    assert "ON requests, events, requests_per_minute, guardrail_verdicts" in text  # the per-tenant recipe
