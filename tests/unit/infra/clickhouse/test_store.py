"""The store against a real embedded chDB in a tmp dir.

chDB hosts one engine path per process at a time, so this module shares one store (module scope)
and closes it at the end; tests isolate their rows by tenant. Reopening is in test_store_reopen.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from infra.clickhouse import QueryFailed, ReadOnlyViolation, Store
from infra.clickhouse.migrate import MigrationError, apply_migrations
from infra.clickhouse.sqltext import split_statements
from schemas.events import ControlAttrs, Event, RequestCompleted, StageAttrs, StageEvent
from schemas.ids import uuid7
from schemas.wire import replace
from tests.support.store import migrated_store

from .factories import completed, control_event, request_batch, stage_event, verdict

pytestmark = pytest.mark.server

ROW_POLICIES = Path(__file__).parents[4] / "infra" / "clickhouse" / "server" / "row_policies.sql"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with migrated_store(tmp_path_factory.mktemp("chdb")) as s:
        yield s


def one(store: Store, sql: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    result = store.query_readonly(sql, params)
    assert len(result.rows) == 1, result
    return dict(zip(result.columns, result.rows[0], strict=True))


def scalar(store: Store, sql: str, params: dict[str, Any] | None = None) -> Any:
    return store.query_readonly(sql, params).rows[0][0]


# -- schema --------------------------------------------------------------------------------------


def test_migrate_twice_is_idempotent(store: Store) -> None:
    assert store.migrate() == []
    assert store.migrate() == []
    tables = {r[0] for r in store.query_readonly("SHOW TABLES").rows}
    expected = {"requests", "events", "requests_per_minute", "requests_per_minute_mv", "schema_migrations",
                "gateway_events"}
    assert expected <= tables
    assert scalar(store, "SELECT count() FROM schema_migrations WHERE version = 1") == 1
    assert scalar(store, "SELECT count() FROM schema_migrations WHERE version = 3") == 1


def test_ddl_features_are_real(store: Store) -> None:
    engines = dict(store.query_readonly(
        "SELECT name, engine FROM system.tables WHERE database = currentDatabase()"
    ).rows)
    assert engines["requests"] == "ReplacingMergeTree"
    assert engines["events"] == "MergeTree"
    assert engines["requests_per_minute"] == "AggregatingMergeTree"
    assert engines["requests_per_minute_mv"] == "MaterializedView"
    assert engines["gateway_events"] == "MergeTree"
    cols = dict(store.query_readonly("SELECT name, type FROM system.columns WHERE table = 'requests'").rows)
    assert cols["cost_usd"] == "Nullable(Decimal(18, 9))"
    assert cols["redaction_counts"] == "Map(LowCardinality(String), UInt16)"
    assert cols["tags"] == "Map(LowCardinality(String), String)"
    for name in ("config_version", "route_path", "experiment", "variant"):
        assert cols[name] == "LowCardinality(String)"
    assert "ORDER BY (kind, subject, ts)" in scalar(store, "SHOW CREATE TABLE gateway_events")
    create = scalar(store, "SHOW CREATE TABLE requests")
    assert "TTL toDateTime(ts) + toIntervalDay(30)," in create.split("`request_body`")[1].split("\n")[0]
    assert "ORDER BY (tenant, toStartOfMinute(ts), request_id)" in create


def test_failed_migration_names_file_and_is_not_recorded(store: Store, tmp_path: Path) -> None:
    (tmp_path / "9001_ok.sql").write_text("CREATE TABLE IF NOT EXISTS t_9001 (x UInt8) ENGINE = Memory;")
    (tmp_path / "9002_bad.sql").write_text(
        "CREATE TABLE IF NOT EXISTS t_9002 (x UInt8) ENGINE = Memory;\nNONSENSE;"
    )
    with pytest.raises(MigrationError, match="9002_bad.sql statement 2 failed"):
        apply_migrations(store._client, tmp_path)
    versions = {r[0] for r in store.query_readonly("SELECT version FROM schema_migrations").rows}
    assert 9001 in versions and 9002 not in versions
    (tmp_path / "9002_bad.sql").write_text("CREATE TABLE IF NOT EXISTS t_9002 (x UInt8) ENGINE = Memory;")
    assert [m.version for m in apply_migrations(store._client, tmp_path)] == [9002]
    assert apply_migrations(store._client, tmp_path) == []


def test_row_policies_file_parses_but_is_server_only(store: Store) -> None:
    statements = split_statements(ROW_POLICIES.read_text())
    assert any(s.leading_keyword == "CREATE" and "ROW POLICY" in s.code.upper() for s in statements)
    for s in statements:  # formatQuery parses with the real ClickHouse parser without executing
        assert scalar(store, "SELECT formatQuery({q:String})", {"q": s.text})


# -- writes --------------------------------------------------------------------------------------


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def test_write_and_read_back_every_request_column(store: Store) -> None:
    ts = float(int(time.time()) - 3600) + 0.123  # recent: bodies older than 30 days are cleared by TTL
    rc = completed(
        tenant="t_cols", user="u_42", endpoint="chat.completions", stream=True, status_code=429,
        error_type="rate_limit_error", error_code="rate_limit_exceeded", error_message="slow down",
        usage_source="estimated", cost_usd="0.0012345", latency_ms=812.5, ttfb_ms=55.25,
        ttfb_added_ms=4.5, cache="hit", cache_saved_usd="0.0025", cache_similarity=0.9375, provider_ms=790.0,
        gateway_overhead_ms=22.5, attempts=3, redactions=4, redaction_counts={"EMAIL_ADDRESS": 3, "PHONE": 1},
        output_findings={"CREDIT_CARD": 2}, delivery=2, stage_ms={"redaction": 1.5, "provider": 790.0},
        request_body='{"messages":[{"content":"hi <EMAIL_1>"}]}', response_body='{"choices":[]}',
        ts=ts, finished_at=ts + 0.813, tags={"team": "search", "feature": "autocomplete"},
        config_version="v12", route_path="fallback/1/loadbalance/0", experiment="cheap-vs-best", variant="b",
        guardrail_profile="strict", verdicts=[verdict("pii", outcome="redact"), verdict("secrets")],
        team="search", scopes=["key.key_1", "team.search"], hold_nusd=2_500_000, limit_refused="team.search rpm",
        governance_notes=["overshoot"],
        skipped_targets={"mock-us/gpt-4o": "region=us, needs eu"}, batch_id="batch_0123", custom_id="line-7",
    )
    result = store.write([rc])
    assert (result.requests, result.events, result.duplicates, result.rejected, result.verdicts) == (1, 1, 0, 0, 2)
    sql = "SELECT *, priced, total_tokens FROM requests WHERE request_id = {id:UUID}"
    row = one(store, sql, {"id": rc.request_id})
    assert row.pop("inserted_at").endswith("Z")
    assert row == {
        "request_id": rc.request_id, "event_id": rc.event_id,
        "ts": iso(ts), "finished_at": iso(ts + 0.813),
        "tenant": "t_cols", "api_key_id": "key_1", "user": "u_42", "endpoint": "chat.completions",
        "tags": {"team": "search", "feature": "autocomplete"}, "config_version": "v12",
        "route_path": "fallback/1/loadbalance/0", "experiment": "cheap-vs-best", "variant": "b",
        "model_requested": "gpt-4o-mini", "model_served": "gpt-4o-mini-2024-07-18", "provider": "openai",
        "stream": True, "status_code": 429, "error_type": "rate_limit_error",
        "error_code": "rate_limit_exceeded", "error_message": "slow down", "prompt_tokens": 12,
        "completion_tokens": 30, "cached_tokens": 0, "usage_source": "estimated",
        "cost_usd": "0.001234500", "latency_ms": 812.5, "ttfb_ms": 55.25, "ttfb_added_ms": 4.5, "cache": "hit",
        "cache_saved_usd": "0.002500000", "cache_similarity": 0.9375, "provider_ms": 790.0,
        "gateway_overhead_ms": 22.5, "attempts": 3, "redactions": 4,
        "redaction_counts": {"EMAIL_ADDRESS": 3, "PHONE": 1}, "output_findings": {"CREDIT_CARD": 2},
        "delivery": 2, "stage_ms": {"redaction": 1.5, "provider": 790.0},
        "request_body": '{"messages":[{"content":"hi <EMAIL_1>"}]}', "response_body": '{"choices":[]}',
        "stage": "output_filter", "schema_version": 1, "priced": True, "total_tokens": 42,
        "guardrail_profile": "strict", "guardrail_outcomes": {"pii": "redact", "secrets": "pass"},
        "team": "search", "reserved_usd": "0.002500000", "limit_scopes": ["key.key_1", "team.search"],
        "limit_refused": "team.search rpm", "governance_notes": ["overshoot"],
        "policy_skips": {"mock-us/gpt-4o": "region=us, needs eu"}, "batch_id": "batch_0123", "custom_id": "line-7",
    }
    ev = one(store, "SELECT * FROM events WHERE request_id = {id:UUID}", {"id": rc.request_id})
    assert ev["type"] == "request.completed" and ev["status"] == "error" and ev["delivery"] == 2
    assert json.loads(ev["attrs"])["status_code"] == 429


def test_unpriced_is_null_never_zero(store: Store) -> None:
    priced_zero = completed(tenant="t_price", cost_usd="0")
    unpriced = completed(tenant="t_price", cost_usd=None, ttfb_ms=None)
    store.write([priced_zero, unpriced])
    rows = {r[0]: r[1:] for r in store.query_readonly(
        "SELECT toString(request_id), cost_usd, priced, ttfb_ms FROM requests WHERE tenant = 't_price'"
    ).rows}
    assert rows[priced_zero.request_id] == ["0.000000000", True, 40.0]
    assert rows[unpriced.request_id] == [None, False, None]
    sql = "SELECT sum(cost_usd) AS s, countIf(NOT priced) AS u FROM requests WHERE tenant = 't_price'"
    totals = one(store, sql)
    assert totals == {"s": "0.000000000", "u": 1}


def test_stage_events_round_trip(store: Store) -> None:
    rid = uuid7()
    ev = stage_event(rid, "policy", tenant=None, api_key_id=None, status="error", delivery=3,
                     attrs=StageAttrs(chunks=2, reason="deny_gpt4"), ts=1_790_000_000.5)
    assert store.write([ev]).events == 1
    row = one(store, "SELECT * EXCEPT inserted_at FROM events WHERE request_id = {id:UUID}", {"id": rid})
    assert row == {
        "event_id": ev.event_id, "request_id": rid, "ts": "2026-09-21T14:13:20.500000Z", "stage": "policy",
        "type": "policy.done", "status": "error", "tenant": "", "api_key_id": "", "duration_ms": 1.25,
        "delivery": 3, "attrs": '{"chunks":2,"reason":"deny_gpt4"}', "schema_version": 1,
    }


def test_batch_is_two_inserts_and_counts(store: Store) -> None:
    batch = request_batch(20, tenant="t_batch")
    calls: list[str] = []
    real = store._client.insert

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["context"].table.strip("`"))
        return real(*args, **kwargs)

    store._client.insert = spy
    try:
        result = store.write(batch)
    finally:
        del store._client.insert
    assert sorted(calls) == ["events", "requests"]
    assert (result.events, result.requests) == (120, 20)
    assert scalar(store, "SELECT count() FROM events WHERE tenant = 't_batch'") == 120


def test_redelivered_completion_writes_no_second_request_row(store: Store) -> None:
    rc = completed(tenant="t_dup")
    again = replace(rc, event_id=uuid7(), delivery=2)
    assert store.write([rc, rc]).duplicates == 1  # twice in one batch
    result = store.write([again])  # later redelivery, new event id
    assert (result.requests, result.duplicates, result.events) == (0, 1, 0)
    params = {"id": rc.request_id}
    assert scalar(store, "SELECT count() FROM requests WHERE request_id = {id:UUID}", params) == 1
    # a request's events are one unit with its row: a duplicate adds neither
    assert scalar(store, "SELECT count() FROM events WHERE request_id = {id:UUID}", params) == 1


def test_stage_events_travel_with_the_completion(store: Store) -> None:
    rid = uuid7()
    carried = [stage_event(rid, st, tenant=None, api_key_id=None) for st in ("redaction", "policy")]
    rc = completed(rid, tenant="t_unit", api_key_id="key_u", stage_events=carried)
    result = store.write([rc])
    assert (result.requests, result.events) == (1, 3)
    params = {"id": rid}
    rows = store.query_readonly(
        "SELECT stage, tenant, api_key_id FROM events WHERE request_id = {id:UUID} ORDER BY ts", params).rows
    assert sorted(r[0] for r in rows) == ["output_filter", "policy", "redaction"]
    assert all(r[1] == "t_unit" and r[2] == "key_u" for r in rows)  # stages before policy knew no tenant
    assert store.write([replace(rc, event_id=uuid7())]).events == 0


def test_replacing_merge_tree_is_the_backstop(store: Store) -> None:
    rc = completed(tenant="t_backstop")
    params = {"id": rc.request_id}
    store._client.command("SYSTEM STOP MERGES requests")  # keep the two parts apart to see both rows
    try:
        store.write([rc])
        store.dedupe.clear()  # as if a second sink, with its own set, wrote it again
        assert store.write([rc]).requests == 1
        assert scalar(store, "SELECT count() FROM requests WHERE request_id = {id:UUID}", params) == 2
        assert scalar(store, "SELECT count() FROM requests FINAL WHERE request_id = {id:UUID}", params) == 1
    finally:
        store._client.command("SYSTEM START MERGES requests")
    store._client.command("OPTIMIZE TABLE requests FINAL")
    assert scalar(store, "SELECT count() FROM requests WHERE request_id = {id:UUID}", params) == 1


def test_malformed_events_are_rejected_not_fatal(store: Store) -> None:
    good = completed(tenant="t_bad")
    bad_id = stage_event("not-a-uuid", tenant="t_bad")
    bad_ts = completed(tenant="t_bad", ts=float("nan"))
    huge_cost = completed(tenant="t_bad", cost_usd="12345678901.5", prompt_tokens=2**40, attempts=1000)
    result = store.write([bad_id, good, bad_ts, huge_cost])
    assert (result.rejected, result.requests, result.events) == (2, 2, 2)
    row = one(store, "SELECT cost_usd, prompt_tokens, attempts FROM requests WHERE request_id = {id:UUID}",
              {"id": huge_cost.request_id})
    assert row == {"cost_usd": None, "prompt_tokens": 2**32 - 1, "attempts": 255}


def test_recent_request_ids(store: Store) -> None:
    rc = completed(tenant="t_recent")
    store.write([rc])
    assert rc.request_id in store.recent_request_ids(60)
    assert len(store.recent_request_ids(3600, limit=1)) == 1


def test_rollup_merges_with_merge_combinators(store: Store) -> None:
    minute = float(int(time.time()) // 60 * 60)
    mk = [
        completed(tenant="t_roll", ts=minute + 1, latency_ms=100.0, gateway_overhead_ms=1.0, cost_usd="0.5"),
        completed(tenant="t_roll", ts=minute + 2, latency_ms=200.0, gateway_overhead_ms=2.0, cost_usd=None),
        completed(tenant="t_roll", ts=minute + 3, latency_ms=300.0, gateway_overhead_ms=3.0, cost_usd="0.25"),
    ]
    store._client.command("SYSTEM STOP MERGES requests_per_minute")  # keep the partial states apart
    try:
        for rc in mk:  # three inserts -> three partial rollup rows for one key
            store.write([rc])
        assert scalar(store, "SELECT count() FROM requests_per_minute WHERE tenant = 't_roll'") == 3
    finally:
        store._client.command("SYSTEM START MERGES requests_per_minute")
    row = one(store, """
        SELECT countMerge(requests) AS n, sumMerge(errors) AS errors, sumMerge(unpriced) AS unpriced,
               sumMerge(prompt_tokens) AS pt, sumMerge(completion_tokens) AS ct, sumMerge(cost_usd) AS cost,
               quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms) AS lat,
               quantilesTDigestMerge(0.5, 0.9, 0.99)(gateway_overhead_ms) AS ovh
        FROM requests_per_minute WHERE tenant = 't_roll' GROUP BY tenant, minute
    """)
    assert row == {"n": 3, "errors": 0, "unpriced": 1, "pt": 36, "ct": 90, "cost": "0.750000000",
                   "lat": [200.0, 300.0, 300.0], "ovh": [2.0, 3.0, 3.0]}


def test_body_ttl_clears_old_bodies(store: Store) -> None:
    old = completed(tenant="t_ttl", ts=time.time() - 40 * 86400, request_body="old body", response_body="old")
    new = completed(tenant="t_ttl", request_body="new body", response_body="new")
    store.write([old, new])
    store._client.command("OPTIMIZE TABLE requests FINAL")
    rows = {r[0]: r[1:] for r in store.query_readonly(
        "SELECT toString(request_id), request_body, response_body, model_served FROM requests "
        "WHERE tenant = 't_ttl'"
    ).rows}
    assert rows[old.request_id] == ["", "", "gpt-4o-mini-2024-07-18"]  # row kept, bodies cleared
    assert rows[new.request_id] == ["new body", "new", "gpt-4o-mini-2024-07-18"]


# -- analyst reads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO events (event_id) VALUES (generateUUIDv4())",
        "ALTER TABLE requests DELETE WHERE 1",
        "DROP TABLE requests",
        "CREATE TABLE x (a UInt8) ENGINE = Memory",
        "TRUNCATE TABLE events",
        "SYSTEM FLUSH LOGS",
        "SELECT 1; DROP TABLE requests",
        "SELECT 1 INTO OUTFILE 'x.csv'",
    ],
)
def test_query_readonly_refuses_writes(store: Store, sql: str) -> None:
    with pytest.raises(ReadOnlyViolation, match="gateway sql is read-only"):
        store.query_readonly(sql)
    assert scalar(store, "EXISTS TABLE requests") == 1


def test_engine_readonly_session_backs_the_guard(store: Store) -> None:
    """Finding: chDB honours readonly=1 (writes, DDL, SET, file()/url() refused), not INTO OUTFILE."""
    assert scalar(store, "SELECT getSetting('readonly')") == 1
    reader = store._reader_client()
    refused = ("INSERT INTO events (event_id) VALUES (now())", "DROP TABLE events", "SET readonly = 0")
    for sql in refused:
        with pytest.raises(Exception, match="readonly mode"):
            reader.command(sql)
    with pytest.raises(ReadOnlyViolation, match="ClickHouse refused the statement in readonly mode"):
        store.query_readonly("SELECT * FROM file('/etc/hostname', 'LineAsString')")
    with pytest.raises(ReadOnlyViolation):
        store.query_readonly("SELECT 1 SETTINGS readonly = 0")


@pytest.mark.parametrize(
    "sql", ["SELECT 1", "WITH 2 AS x SELECT x", "SHOW TABLES", "DESCRIBE TABLE requests", "DESC events",
            "EXPLAIN SELECT count() FROM requests", "EXISTS TABLE events"]
)
def test_query_readonly_accepts_reads(store: Store, sql: str) -> None:
    result = store.query_readonly(sql)
    assert result.columns and result.rows


def test_query_results_are_json_safe(store: Store) -> None:
    rc = completed(tenant="t_json")
    store.write([rc])
    result = store.query_readonly(
        "SELECT request_id, ts, cost_usd, redaction_counts, toDate(ts) AS d, [1.5, nan] AS a, "
        "(1, 'x') AS t, toIPv4('10.1.2.3') AS ip, 18446744073709551615 AS big "
        "FROM requests WHERE tenant = {t:String}",
        {"t": "t_json"},
    )
    json.dumps(result.to_dict(), allow_nan=False)
    (row,) = result.rows
    assert row[0] == rc.request_id
    assert isinstance(row[1], str) and row[1].endswith("Z")
    assert row[2] == "0.000123450"
    assert row[5] == [1.5, None]
    assert row[6] == [1, "x"] and row[7] == "10.1.2.3" and row[8] == 2**64 - 1
    assert result.types[:3] == ["UUID", "DateTime64(3, 'UTC')", "Nullable(Decimal(18, 9))"]


def test_max_rows_truncates(store: Store) -> None:
    result = store.query_readonly("SELECT number FROM numbers(100000)", max_rows=10)
    assert result.truncated and [r[0] for r in result.rows] == list(range(10))
    assert not store.query_readonly("SELECT 1", max_rows=10).truncated


def test_query_error_is_query_failed(store: Store) -> None:
    with pytest.raises(QueryFailed, match="ClickHouse could not run the query") as err:
        store.query_readonly("SELECT no_such_column FROM requests")
    assert err.value.info().status_code == 400


def test_reads_and_writes_run_concurrently(store: Store) -> None:
    errors: list[Exception] = []
    stop = time.monotonic() + 1.0

    def writer() -> None:
        try:
            while time.monotonic() < stop:
                store.write(request_batch(20, tenant="t_conc"))
        except Exception as exc:  # noqa: BLE001 - any error of the writer thread: the test asserts none
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while time.monotonic() < stop:
        store.query_readonly("SELECT count() FROM events WHERE tenant = 't_conc'")
        reads += 1
    thread.join()
    assert not errors and reads > 0
    assert scalar(store, "SELECT count() FROM requests WHERE tenant = 't_conc'") * 6 == scalar(
        store, "SELECT count() FROM events WHERE tenant = 't_conc'"
    )


def test_new_columns_default_to_empty(store: Store) -> None:
    rc = completed(tenant="t_defaults")
    store.write([rc])
    row = one(store, "SELECT tags, config_version, route_path, experiment, variant, tags['team'] AS team "
                     "FROM requests WHERE request_id = {id:UUID}", {"id": rc.request_id})
    assert row == {"tags": {}, "config_version": "", "route_path": "", "experiment": "", "variant": "", "team": ""}


def test_control_events_land_in_gateway_events(store: Store) -> None:
    breaker = control_event(subject="t_ctl/openai/gpt-4o", ts=1_790_000_000.25)
    config = control_event(kind="config", subject="t_ctl-v8", from_state="v7", to_state="applied",
                           reason="file changed", source="routing-77", config_version="v8", attrs=ControlAttrs())
    rc = completed(tenant="t_ctl")
    batch: list[Event] = [breaker, stage_event(rc.request_id, tenant="t_ctl"), rc, config, breaker]  # twice
    result = store.write(batch)
    assert (result.gateway_events, result.requests, result.events, result.duplicates) == (2, 1, 2, 0)
    row = one(store, "SELECT * EXCEPT inserted_at FROM gateway_events WHERE event_id = {id:UUID}",
              {"id": breaker.event_id})
    assert row == {
        "event_id": breaker.event_id, "ts": "2026-09-21T14:13:20.250000Z", "kind": "breaker",
        "subject": "t_ctl/openai/gpt-4o", "from_state": "closed", "to_state": "open",
        "reason": "5 failures in 30s", "source": "routing-1234", "config_version": "v7",
        "attrs": '{"ok":0,"fail":5,"window_s":30.0}', "schema_version": 1,
    }
    cfg = one(store, "SELECT kind, to_state, attrs FROM gateway_events WHERE subject = 't_ctl-v8'")
    assert cfg == {"kind": "config", "to_state": "applied", "attrs": "{}"}
    # control events are no request: nothing of them reaches requests or events
    assert scalar(store, "SELECT count() FROM events WHERE tenant = 't_ctl'") == 2


def test_control_events_only_batch_is_one_insert(store: Store) -> None:
    calls: list[str] = []
    real = store._client.insert

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["context"].table.strip("`"))
        return real(*args, **kwargs)

    store._client.insert = spy
    try:
        result = store.write([control_event(subject="t_ctl_only"), control_event(subject="t_ctl_only")])
    finally:
        del store._client.insert
    assert calls == ["gateway_events"] and result.gateway_events == 2


def test_malformed_control_event_is_rejected_not_fatal(store: Store) -> None:
    good = control_event(subject="t_ctl_bad")
    bad = [control_event(subject="t_ctl_bad", event_id="nope"), control_event(subject="t_ctl_bad", ts=-5.0)]
    result = store.write([*bad, good])
    assert (result.rejected, result.gateway_events) == (2, 1)
    assert scalar(store, "SELECT count() FROM gateway_events WHERE subject = 't_ctl_bad'") == 1


def test_events_only_batch_and_empty_batch(store: Store) -> None:
    assert store.write([]).events == 0
    evs: list[StageEvent | RequestCompleted] = [stage_event(uuid7(), tenant="t_only")]
    assert store.write(evs).requests == 0


def test_readme_example_queries_run(store: Store) -> None:
    readme = (ROW_POLICIES.parents[1] / "README.md").read_text()
    block = readme.split("## Example analyst queries")[1].split("```sql")[1].split("```")[0]
    statements = split_statements(block)
    assert len(statements) == 6
    rc = completed(tenant="acme", redaction_counts={"EMAIL_ADDRESS": 1}, stage_ms={"provider": 2500.0},
                   latency_ms=2600.0)
    store.write([rc, replace(rc, event_id=uuid7(), delivery=2)])
    for statement in statements:
        result = store.query_readonly(statement.text, {"id": rc.request_id})
        assert result.rows, statement.text


def test_readme_routing_queries_run(store: Store) -> None:
    readme = (ROW_POLICIES.parents[1] / "README.md").read_text()
    block = readme.split("### Routing, experiments, breakers, config versions, tags")[1]
    statements = split_statements(block.split("```sql")[1].split("```")[0])
    assert len(statements) == 6
    batch: list[Event] = [
        completed(tenant="acme", experiment="cheap-vs-best", variant=v, config_version="v3", latency_ms=ms,
                  tags={"team": "search"}, status_code=status, cost_usd=cost)
        for v, ms, status, cost in [("a", 100.0, 200, "0.01"), ("a", 300.0, 500, None), ("b", 80.0, 200, "0.002")]
    ]
    batch += [control_event(), control_event(kind="config", subject="v3", to_state="applied")]
    store.write(batch)
    for statement in statements:
        result = store.query_readonly(statement.text)
        assert result.rows, statement.text
    variants = store.query_readonly(statements[0].text).rows
    assert [(r[1], r[2]) for r in variants] == [("a", 2), ("b", 1)]
    assert variants[0][3] == 0.5 and variants[0][7] == 1  # error rate, unpriced
