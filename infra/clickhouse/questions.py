"""The ten analyst questions: what an operator of the gateway asks of its store, as named SQL.

One place for them: the README lists them (with their timings at 10M rows), ``bench/analytics_bench.py``
times them, and the tests run them on a small generated set and check the rollups against the raw rows.

Each question's SQL takes ClickHouse query parameters (``{start:String}``, ``{end:String}`` as
``'YYYY-MM-DD hh:mm:ss'`` UTC, ``{tenant:String}``): ``Store.query_readonly(q.sql, params)`` binds them;
``gateway sql`` takes no parameters, so ``q.render(params)`` writes them in as quoted literals.

Where each one reads, and why (see the README's *Analytics at scale*):
- the hourly rollups (0009 ``requests_per_hour``; 0010 ``provider_requests_per_hour``,
  ``key_spend_per_hour``, ``guardrail_outcomes_per_hour``) for the questions across tenants or over
  weeks: thousands to hundreds of thousands of pre-aggregated rows instead of tens of millions;
- ``requests_per_minute`` (0001) for minute resolution over hours;
- ``requests`` and ``events`` for what no rollup keeps (per batch job, per stage): their ordering keys
  lead with ``tenant`` and then time, so one tenant's window is a contiguous range of granules, and
  monthly partitions drop the months outside the window.

Counts from ``requests`` here do not use ``FINAL``: the sink's de-duplication keeps duplicates out, and
FINAL costs a merge at read time. Where a duplicate may have got through (several sinks, see the
README's *De-duplication*), add ``FINAL`` after the table name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_PARAM = re.compile(r"\{(\w+):(\w+)\}")


@dataclass(frozen=True, slots=True)
class Question:
    name: str
    question: str
    """the question in words, as an analyst would ask it"""
    source: str
    """the table it reads"""
    sql: str

    @property
    def params(self) -> tuple[str, ...]:
        """The query parameters the SQL takes, in order of first use."""
        return tuple(dict.fromkeys(m.group(1) for m in _PARAM.finditer(self.sql)))

    def render(self, params: dict[str, str]) -> str:
        """The SQL with its parameters written in as quoted string literals (for ``gateway sql``)."""

        def literal(match: re.Match[str]) -> str:
            value = params[match.group(1)]
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

        return _PARAM.sub(literal, self.sql)


def window_params(end: datetime, days: float = 30, tenant: str = "t00") -> dict[str, str]:
    """``start``/``end`` for the ``days`` before ``end``, and the tenant the per-tenant questions ask about."""
    end_utc = end.astimezone(UTC)
    fmt = "%Y-%m-%d %H:%M:%S"
    return {"start": (end_utc - timedelta(days=days)).strftime(fmt), "end": end_utc.strftime(fmt), "tenant": tenant}


_HOUR_WINDOW = "hour >= toDateTime({start:String}, 'UTC') AND hour < toDateTime({end:String}, 'UTC')"
_TS_WINDOW = "ts >= toDateTime64({start:String}, 3, 'UTC') AND ts < toDateTime64({end:String}, 3, 'UTC')"

QUESTIONS: tuple[Question, ...] = (
    Question(
        "spend_per_tenant_per_day",
        "What did each tenant spend per day (and how many requests could not be priced)?",
        "requests_per_hour",
        f"""SELECT tenant, toDate(hour) AS day, countMerge(requests) AS n_requests,
       sumMerge(cost_usd) AS usd, sumMerge(unpriced) AS n_unpriced
FROM requests_per_hour
WHERE {_HOUR_WINDOW}
GROUP BY tenant, day
ORDER BY day, tenant""",
    ),
    Question(
        "latency_per_provider_per_hour",
        "What were the p50, p95 and p99 latencies of successful requests per provider per hour?",
        "provider_requests_per_hour",
        f"""SELECT provider, hour, n_requests, round(q[1]) AS p50_ms, round(q[3]) AS p95_ms, round(q[4]) AS p99_ms
FROM
(
    SELECT provider, hour, countMerge(requests) AS n_requests,
           quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_ms) AS q
    FROM provider_requests_per_hour
    WHERE {_HOUR_WINDOW} AND provider != ''
    GROUP BY provider, hour
)
ORDER BY provider, hour""",
    ),
    Question(
        "error_rate_by_model",
        "Which models fail most often, and how (rate limits, provider errors, bad requests, guardrail blocks)?",
        "requests_per_hour",
        f"""SELECT model_requested, countMerge(requests) AS n_requests, sumMerge(errors) AS n_errors,
       round(n_errors / n_requests, 5) AS error_rate, sumMerge(rate_limited) AS n_rate_limited,
       sumMerge(server_errors) AS n_server_errors, sumMerge(client_errors) AS n_client_errors,
       sumMerge(guardrail_blocked) AS n_guardrail_blocked
FROM requests_per_hour
WHERE {_HOUR_WINDOW}
GROUP BY model_requested
ORDER BY error_rate DESC""",
    ),
    Question(
        "prompt_cache_by_model",
        "How often did the providers' prompt caches hit, per model, and what share of prompt tokens came from them?",
        "requests_per_hour",
        f"""SELECT provider, model_requested, countMerge(requests) AS n_requests, sumMerge(cache_hits) AS n_cache_hits,
       round(n_cache_hits / n_requests, 5) AS hit_rate, sumMerge(cached_tokens) AS n_cached_tokens,
       sumMerge(prompt_tokens) AS n_prompt_tokens,
       round(n_cached_tokens / greatest(n_prompt_tokens, 1), 5) AS cached_share
FROM requests_per_hour
WHERE {_HOUR_WINDOW} AND provider != ''
GROUP BY provider, model_requested
ORDER BY n_requests DESC""",
    ),
    Question(
        "guardrail_outcomes",
        "What did each guardrail decide (pass, flag, redact, block), how often, and how long did it take?",
        "guardrail_outcomes_per_hour",
        f"""SELECT profile, guardrail, phase, outcome, countMerge(verdicts) AS n_verdicts,
       round(n_verdicts / sum(n_verdicts) OVER (PARTITION BY profile, guardrail), 5) AS share,
       round(sumMerge(duration_ms) / n_verdicts, 3) AS avg_ms
FROM guardrail_outcomes_per_hour
WHERE {_HOUR_WINDOW}
GROUP BY profile, guardrail, phase, outcome
ORDER BY profile, guardrail, outcome""",
    ),
    Question(
        "top_keys_by_cost",
        "Which 20 API keys cost the most, with their team, requests, tokens and unpriced requests?",
        "key_spend_per_hour",
        f"""SELECT tenant, api_key_id, team, countMerge(requests) AS n_requests, sumMerge(cost_usd) AS usd,
       sumMerge(unpriced) AS n_unpriced, sumMerge(prompt_tokens) + sumMerge(completion_tokens) AS n_tokens
FROM key_spend_per_hour
WHERE {_HOUR_WINDOW}
GROUP BY tenant, api_key_id, team
ORDER BY usd DESC
LIMIT 20""",
    ),
    Question(
        "ttft_by_provider",
        "How long until the first token (p50, p95, p99) for streamed successful requests, per provider and model?",
        "provider_requests_per_hour",
        f"""SELECT provider, model_requested, n_streamed, round(q[1]) AS p50_ms, round(q[3]) AS p95_ms,
       round(q[4]) AS p99_ms
FROM
(
    SELECT provider, model_requested, sumMerge(streamed) AS n_streamed,
           quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(ttfb_ms) AS q
    FROM provider_requests_per_hour
    WHERE {_HOUR_WINDOW} AND provider != ''
    GROUP BY provider, model_requested
    HAVING n_streamed > 0
)
ORDER BY provider, p50_ms""",
    ),
    Question(
        "tenant_per_minute",
        "Minute by minute over the 6 hours before `end`: one tenant's requests, errors, spend and p99 latency.",
        "requests_per_minute",
        """SELECT minute, countMerge(requests) AS n_requests, sumMerge(errors) AS n_errors, sumMerge(cost_usd) AS usd,
       round(quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_ms)[3]) AS p99_ms
FROM requests_per_minute
WHERE tenant = {tenant:String}
  AND minute >= toDateTime({end:String}, 'UTC') - INTERVAL 6 HOUR AND minute < toDateTime({end:String}, 'UTC')
GROUP BY minute
ORDER BY minute""",
    ),
    Question(
        "stage_time_per_stage",
        "Over the day before `end`, how long did each stage take for one tenant's requests (p50, p95), "
        "and how often did it fail?",
        "events",
        """SELECT stage, count() AS n_events, countIf(status = 'error') AS n_errors,
       round(quantile(0.5)(duration_ms), 2) AS p50_ms, round(quantile(0.95)(duration_ms), 2) AS p95_ms
FROM events
WHERE tenant = {tenant:String} AND type != 'request.completed'
  AND ts >= toDateTime64({end:String}, 3, 'UTC') - INTERVAL 1 DAY AND ts < toDateTime64({end:String}, 3, 'UTC')
GROUP BY stage
ORDER BY stage""",
    ),
    Question(
        "batch_jobs_of_tenant",
        "One tenant's 50 most expensive batch jobs: lines, failures, cost, and when they ran.",
        "requests",
        f"""SELECT batch_id, count() AS n_lines, countIf(status_code >= 400) AS n_failed, sum(cost_usd) AS usd,
       min(ts) AS first_line, max(finished_at) AS last_answer
FROM requests
WHERE tenant = {{tenant:String}} AND {_TS_WINDOW} AND batch_id != ''
GROUP BY batch_id
ORDER BY usd DESC
LIMIT 50""",
    ),
)

BY_NAME: dict[str, Question] = {q.name: q for q in QUESTIONS}
