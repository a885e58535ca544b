"""The ten analyst questions on a small generated store (20,000 requests over 3 days), the rollups they
read checked against the raw rows, and the generator's determinism.

One chDB store for the module (one engine path per process). The rows end on 2020-01-04: long past,
so every body was cleared by the 30-day column TTL on insert whatever today's date is (the tests read
no clock), which one test checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.gen_requests import generate
from bench.synthetic_sql import Window, request_rows, requests_select
from bench.traffic_mix import priced_mix
from infra.clickhouse import Store
from infra.clickhouse.questions import BY_NAME, QUESTIONS, window_params
from infra.prices import load_catalog
from tests.support.store import migrated_store

from .factories import completed

pytestmark = pytest.mark.server

ROWS = 20_000
SEED = 7
END = datetime(2020, 1, 4, tzinfo=UTC)
DAYS = 3
PARAMS = window_params(END, DAYS, "t00")
_RAW_WINDOW = "ts >= toDateTime64({start:String}, 3, 'UTC') AND ts < toDateTime64({end:String}, 3, 'UTC')"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with migrated_store(tmp_path_factory.mktemp("analytics")) as s:
        report = generate(s, ROWS, seed=SEED, end=END, days=DAYS, batch=7_000, log=False)
        assert report.requests == ROWS
        yield s


def rows(store: Store, sql: str, params: dict[str, str] | None = None) -> list[list[Any]]:
    return store.query_readonly(sql, params if params is not None else PARAMS, max_rows=100_000).rows


def plain(store: Store, sql: str) -> list[list[Any]]:
    """A query without parameters (clickhouse-connect would read the generator's ``%`` as placeholders)."""
    return store.query_readonly(sql, max_rows=100_000).rows


# -- the questions ---------------------------------------------------------------------------------


EXPECTED_COLUMNS = {
    "spend_per_tenant_per_day": ["tenant", "day", "n_requests", "usd", "n_unpriced"],
    "latency_per_provider_per_hour": ["provider", "hour", "n_requests", "p50_ms", "p95_ms", "p99_ms"],
    "error_rate_by_model": ["model_requested", "n_requests", "n_errors", "error_rate", "n_rate_limited",
                            "n_server_errors", "n_client_errors", "n_guardrail_blocked"],
    "prompt_cache_by_model": ["provider", "model_requested", "n_requests", "n_cache_hits", "hit_rate",
                              "n_cached_tokens", "n_prompt_tokens", "cached_share"],
    "guardrail_outcomes": ["profile", "guardrail", "phase", "outcome", "n_verdicts", "share", "avg_ms"],
    "top_keys_by_cost": ["tenant", "api_key_id", "team", "n_requests", "usd", "n_unpriced", "n_tokens"],
    "ttft_by_provider": ["provider", "model_requested", "n_streamed", "p50_ms", "p95_ms", "p99_ms"],
    "tenant_per_minute": ["minute", "n_requests", "n_errors", "usd", "p99_ms"],
    "stage_time_per_stage": ["stage", "n_events", "n_errors", "p50_ms", "p95_ms"],
    "batch_jobs_of_tenant": ["batch_id", "n_lines", "n_failed", "usd", "first_line", "last_answer"],
}


def test_there_are_ten_named_questions_in_words() -> None:
    assert len(QUESTIONS) == 10 and set(BY_NAME) == set(EXPECTED_COLUMNS)
    for q in QUESTIONS:
        assert q.question.endswith(("?", ".")) and q.source in q.sql
        assert set(q.params) <= {"start", "end", "tenant"}


def test_the_readme_lists_every_question() -> None:
    readme = (Path(__file__).parents[4] / "README.md").read_text()
    section = readme.split("### Analytics at scale")[1].split("\n## ")[0]
    for q in QUESTIONS:
        assert f"`{q.name}` | `{q.source}`" in section, q.name


@pytest.mark.parametrize("name", list(EXPECTED_COLUMNS))
def test_each_question_answers_with_its_columns(store: Store, name: str) -> None:
    question = BY_NAME[name]
    result = store.query_readonly(question.sql, PARAMS, max_rows=100_000)
    assert result.columns == EXPECTED_COLUMNS[name]
    assert result.rows, f"{name} returned no rows"
    # what `gateway sql` runs (parameters written in) gives the same answer; t-digest quantiles merge their
    # parts in whatever order the threads finish, so two runs of one query may differ by a millisecond
    rendered = store.query_readonly(question.render(PARAMS), max_rows=100_000).rows
    assert [[pytest.approx(v, rel=0.01) if isinstance(v, float) else v for v in row] for row in rendered] == result.rows


def test_question_shapes(store: Store) -> None:
    spend = rows(store, BY_NAME["spend_per_tenant_per_day"].sql)
    assert {r[1] for r in spend} == {"2020-01-01", "2020-01-02", "2020-01-03"}
    assert len(rows(store, BY_NAME["top_keys_by_cost"].sql)) == 20
    minutes = rows(store, BY_NAME["tenant_per_minute"].sql)
    assert 0 < len(minutes) <= 360 and all("2020-01-03T18:00:00Z" <= m[0] < "2020-01-04" for m in minutes)
    stages = {r[0] for r in rows(store, BY_NAME["stage_time_per_stage"].sql)}
    assert stages == {"redaction", "policy", "routing", "provider", "output_filter"}
    outcomes = {(r[1], r[3]) for r in rows(store, BY_NAME["guardrail_outcomes"].sql)}
    assert {("injection", "pass"), ("injection", "block"), ("secrets", "redact"), ("pii_output", "redact")} <= outcomes
    for p in rows(store, BY_NAME["latency_per_provider_per_hour"].sql):
        assert p[3] <= p[4] <= p[5]
    batches = rows(store, BY_NAME["batch_jobs_of_tenant"].sql)
    assert all(b[0].startswith("batch_") and b[1] >= 1 for b in batches)


# -- the rollups give the raw tables' answers ------------------------------------------------------


def test_spend_per_tenant_per_day_equals_raw(store: Store) -> None:
    raw = rows(store, f"""SELECT tenant, toDate(ts) AS day, count(), sum(cost_usd), countIf(cost_usd IS NULL)
        FROM requests WHERE {_RAW_WINDOW} GROUP BY tenant, day ORDER BY day, tenant""")
    assert rows(store, BY_NAME["spend_per_tenant_per_day"].sql) == raw
    assert sum(r[2] for r in raw) == ROWS


def test_error_rates_and_cache_equal_raw(store: Store) -> None:
    raw_errors = rows(store, f"""SELECT model_requested, count() AS n, countIf(status_code >= 400) AS e,
        round(e / n, 5), countIf(status_code = 429), countIf(status_code >= 500),
        countIf(status_code BETWEEN 400 AND 499 AND status_code != 429),
        countIf(has(mapValues(guardrail_outcomes), 'block'))
        FROM requests WHERE {_RAW_WINDOW} GROUP BY model_requested ORDER BY round(e / n, 5) DESC""")
    rolled = rows(store, BY_NAME["error_rate_by_model"].sql)
    assert sorted(rolled) == sorted(raw_errors)
    raw_cache = rows(store, f"""SELECT provider, model_requested, count() AS n, countIf(cached_tokens > 0) AS h,
        round(h / n, 5), sum(cached_tokens) AS c, sum(prompt_tokens) AS p, round(c / greatest(p, 1), 5)
        FROM requests WHERE {_RAW_WINDOW} AND provider != '' GROUP BY provider, model_requested""")
    assert sorted(rows(store, BY_NAME["prompt_cache_by_model"].sql)) == sorted(raw_cache)


def test_top_keys_equal_raw(store: Store) -> None:
    raw = rows(store, f"""SELECT tenant, api_key_id, any(team), count(), sum(cost_usd) AS usd,
        countIf(cost_usd IS NULL), sum(prompt_tokens + completion_tokens) FROM requests WHERE {_RAW_WINDOW}
        GROUP BY tenant, api_key_id ORDER BY usd DESC LIMIT 20""")
    assert rows(store, BY_NAME["top_keys_by_cost"].sql) == raw


def test_per_minute_rollup_equals_raw(store: Store) -> None:
    raw = rows(store, """SELECT toStartOfMinute(ts) AS minute, count(), countIf(status_code >= 400), sum(cost_usd)
        FROM requests WHERE tenant = {tenant:String}
          AND ts >= toDateTime64({end:String}, 3, 'UTC') - INTERVAL 6 HOUR AND ts < toDateTime64({end:String}, 3, 'UTC')
        GROUP BY minute ORDER BY minute""")
    assert [r[:4] for r in rows(store, BY_NAME["tenant_per_minute"].sql)] == raw


def _close(sketch: float, exact: float, tolerance: float) -> bool:
    return abs(sketch - exact) <= tolerance * max(abs(exact), 1.0)


def test_rollup_quantiles_match_exact_quantiles_of_the_raw_rows(store: Store) -> None:
    """Merged t-digests against exact quantiles: per provider over the window (hundreds of rows per
    group), p50 and p95 within 5 %; the streamed TTFT per model likewise."""
    exact = {
        r[0]: r[1:] for r in rows(store, f"""SELECT provider, quantileExact(0.5)(latency_ms),
            quantileExact(0.95)(latency_ms) FROM requests
            WHERE {_RAW_WINDOW} AND status_code < 400 AND provider != '' GROUP BY provider""")
    }
    rolled = rows(store, """SELECT provider, quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_ms)
        FROM provider_requests_per_hour
        WHERE hour >= toDateTime({start:String}, 'UTC') AND hour < toDateTime({end:String}, 'UTC') AND provider != ''
        GROUP BY provider""")
    assert {r[0] for r in rolled} == set(exact)
    for provider, q in rolled:
        assert _close(q[0], exact[provider][0], 0.05), (provider, q, exact[provider])
        assert _close(q[2], exact[provider][1], 0.05), (provider, q, exact[provider])
    ttft_exact = {
        (r[0], r[1]): r[2] for r in rows(store, f"""SELECT provider, model_requested, quantileExact(0.5)(ttfb_ms)
            FROM requests WHERE {_RAW_WINDOW} AND status_code < 400 AND ttfb_ms IS NOT NULL
            GROUP BY provider, model_requested HAVING count() >= 100""")
    }
    ttft = {(r[0], r[1]): r[3] for r in rows(store, BY_NAME["ttft_by_provider"].sql)}
    assert ttft_exact
    for key, p50 in ttft_exact.items():
        assert _close(ttft[key], p50, 0.05), (key, ttft[key], p50)


def test_guardrail_verdicts_match_the_requests_outcomes(store: Store) -> None:
    per_outcome = rows(store, f"""SELECT k, v, count() FROM requests ARRAY JOIN mapKeys(guardrail_outcomes) AS k,
        mapValues(guardrail_outcomes) AS v WHERE {_RAW_WINDOW} GROUP BY k, v ORDER BY k, v""")
    assert [[r[1], r[3], r[4]] for r in rows(store, BY_NAME["guardrail_outcomes"].sql)] == per_outcome
    raw = rows(store, f"""SELECT profile, guardrail, phase, outcome, count() FROM guardrail_verdicts
        WHERE {_RAW_WINDOW} GROUP BY ALL ORDER BY profile, guardrail, outcome""")
    assert [r[:5] for r in rows(store, BY_NAME["guardrail_outcomes"].sql)] == raw


def test_materialized_views_keep_the_rollups_on_new_inserts(store: Store) -> None:
    """Rows the sink writes after the generator reach both rollups (not only the backfill)."""
    ts = datetime(2020, 1, 2, 10, 30, tzinfo=UTC).timestamp()
    events = [completed(tenant="t_mv", ts=ts, finished_at=ts + 1, cost_usd="0.5", status_code=status)
              for status in (200, 200, 502)]
    assert store.write(events).requests == 3
    hour = rows(store, """SELECT countMerge(requests), sumMerge(errors), sumMerge(cost_usd) FROM requests_per_hour
        WHERE tenant = 't_mv'""")
    minute = rows(store, "SELECT countMerge(requests), sumMerge(cost_usd) FROM requests_per_minute "
                         "WHERE tenant = 't_mv'")
    assert hour == [[3, 1, "1.500000000"]] and minute == [[3, "1.500000000"]]


# -- the generator --------------------------------------------------------------------------------


def _window(lo: int = 0, hi: int = ROWS, seed: int = SEED) -> Window:
    return Window(seed=seed, lo=lo, hi=hi, total=ROWS, start_s=int(END.timestamp()) - DAYS * 86400,
                  span_s=DAYS * 86400)


_COMPARED = (  # cast to the table's types: the generator's SELECT computes wider ones (Float64, UInt8...)
    "toString(request_id), ts, toString(tenant), toString(api_key_id), toString(model_requested), toString(provider), "
    "toUInt16(status_code), toUInt32(prompt_tokens), toUInt32(completion_tokens), toUInt32(cached_tokens), "
    "CAST(cost_usd AS Nullable(Decimal(18, 9))), toFloat32(latency_ms), CAST(ttfb_ms AS Nullable(Float32)), "
    "CAST(guardrail_outcomes AS Map(String, String)), batch_id"
)


def _digest(select: str) -> str:
    return f"SELECT count(), groupBitXor(cityHash64({_COMPARED})) FROM ({select})"


def test_generator_is_deterministic(store: Store) -> None:
    """The stored rows are exactly what the generator's SELECT computes again; another seed differs."""
    mix = priced_mix()
    stored = plain(store, f"SELECT count(), groupBitXor(cityHash64({_COMPARED})) FROM requests WHERE tenant != 't_mv'")
    assert stored[0][0] == ROWS
    assert plain(store, _digest(request_rows(_window(), mix))) == stored
    assert plain(store, _digest(request_rows(_window(seed=SEED + 1), mix))) != stored


def test_bodies_are_generated_then_cleared_by_the_column_ttl(store: Store) -> None:
    """Bodies of realistic size are generated; rows older than 30 days land with them empty (column TTL),
    their metrics kept."""
    sizes = plain(store, f"SELECT avg(length(request_body)), avg(length(response_body)) "
                        f"FROM ({request_rows(_window(0, 2_000), priced_mix())})")
    assert 500 < sizes[0][0] < 3_000 and 150 < sizes[0][1] < 2_000
    stored = plain(store, "SELECT max(length(request_body)), max(length(response_body)), countIf(latency_ms > 0) "
                         "FROM requests WHERE tenant != 't_mv'")
    assert stored[0][:2] == [0, 0] and stored[0][2] > 0.9 * ROWS


def test_generated_events_and_verdicts_belong_to_generated_requests(store: Store) -> None:
    assert plain(store, "SELECT count() FROM events WHERE request_id NOT IN (SELECT request_id FROM requests)") == [[0]]
    assert plain(store, "SELECT countIf(type = 'request.completed') FROM events WHERE tenant != 't_mv'") == [[ROWS]]
    verdicts = plain(store, "SELECT count() FROM guardrail_verdicts")[0][0]
    assert verdicts == plain(store, "SELECT sum(length(guardrail_outcomes)) FROM requests")[0][0] > 0


def test_generated_models_and_costs_follow_the_price_catalog(store: Store) -> None:
    catalog = {(p.provider, p.model): p for p in load_catalog()}
    mix = priced_mix()
    assert {(m.profile.provider, m.profile.model) for m in mix if m.input_per_mtok is not None} <= set(catalog)
    sample = rows(store, """SELECT provider, model_requested, prompt_tokens, cached_tokens, completion_tokens, cost_usd
        FROM requests WHERE status_code = 200 AND provider != '' ORDER BY request_id LIMIT 200""")
    for provider, model, prompt, cached, completion, cost in sample:
        price = catalog.get((provider, model))
        if price is None:
            assert cost is None  # the self-hosted model: unpriced, never $0
            continue
        cached_price = Decimal(str(price.cached_input_per_mtok or 0))
        expected = ((prompt - cached) * Decimal(str(price.input_per_mtok)) + cached * cached_price
                    + completion * Decimal(str(price.output_per_mtok))) / Decimal(10**6)
        assert abs(Decimal(cost) - expected) <= Decimal("0.000000002"), (model, cost, expected)


def test_requests_select_is_pure_sql_of_its_window() -> None:
    """No clock, no random(): the same window gives the same SQL text."""
    mix = priced_mix()
    assert requests_select(_window(), mix) == requests_select(_window(), mix)
    assert "now(" not in requests_select(_window(), mix) and "rand" not in requests_select(_window(), mix)
