-- 0009_requests_per_hour: the hourly rollup of `requests` that the analyst questions read
-- (infra/clickhouse/questions.py): spend per tenant per day, latency and TTFT percentiles per provider
-- per hour, error rates and prompt-cache use per model, guardrail blocks, over months of traffic in
-- tens of milliseconds instead of a scan of every request row.
--
-- Key (tenant, hour, provider, model_requested): every question groups by some prefix-compatible subset
-- of it, and tenant leads like every ordering key here (row policies and per-tenant filters prune).
-- No api_key_id or status_code in the key: with them almost every request of an hour is its own
-- rollup row (hundreds of keys x models x statuses), and the rollup would be as large as the table.
-- Per-key spend is read from `requests` itself (three narrow columns); error classes are counters.
--
-- Quantile states are t-digests over SUCCESSFUL requests only (status < 400): an error answers in a
-- few milliseconds and would pull p50 down. ttfb_ms is NULL unless streamed and successful, so its
-- state holds only real first-token times. Levels (0.5, 0.9, 0.95, 0.99): merge with the same levels,
-- `quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)(latency_ms)[3]` is p95.
--
-- Idempotent like every migration. Re-running it (an interrupted run) rebuilds the rollup from
-- `requests`: see the backfill below.
CREATE TABLE IF NOT EXISTS requests_per_hour
(
    hour                DateTime('UTC'),
    tenant              LowCardinality(String),
    provider            LowCardinality(String),
    model_requested     LowCardinality(String),
    requests            AggregateFunction(count),
    errors              AggregateFunction(sum, UInt64) COMMENT 'status >= 400',
    client_errors       AggregateFunction(sum, UInt64) COMMENT '400..499 except 429',
    rate_limited        AggregateFunction(sum, UInt64) COMMENT 'status 429 (provider or gateway limits)',
    server_errors       AggregateFunction(sum, UInt64) COMMENT 'status >= 500',
    guardrail_blocked   AggregateFunction(sum, UInt64) COMMENT 'a guardrail outcome was block',
    guardrail_flagged   AggregateFunction(sum, UInt64) COMMENT 'a guardrail outcome was flag or redact, none block',
    streamed            AggregateFunction(sum, UInt64),
    cache_hits          AggregateFunction(sum, UInt64) COMMENT 'cached_tokens > 0 (provider prompt cache)',
    unpriced            AggregateFunction(sum, UInt64) COMMENT 'cost_usd IS NULL',
    prompt_tokens       AggregateFunction(sum, UInt64),
    completion_tokens   AggregateFunction(sum, UInt64),
    cached_tokens       AggregateFunction(sum, UInt64),
    cost_usd            AggregateFunction(sum, Nullable(Decimal(18, 9))),
    latency_ms          AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Nullable(Float32))
        COMMENT 'successful requests only',
    ttfb_ms             AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Nullable(Float32))
        COMMENT 'streamed successful requests only',
    gateway_overhead_ms AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Float32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, provider, model_requested);

-- The inner SELECT names the inputs so no aggregate alias shadows a source column (README, Rules).
CREATE MATERIALIZED VIEW IF NOT EXISTS requests_per_hour_mv TO requests_per_hour AS
SELECT
    hour,
    tenant,
    provider,
    model_requested,
    countState()                                          AS requests,
    sumState(is_error)                                    AS errors,
    sumState(is_client_error)                             AS client_errors,
    sumState(is_rate_limited)                             AS rate_limited,
    sumState(is_server_error)                             AS server_errors,
    sumState(is_blocked)                                  AS guardrail_blocked,
    sumState(is_flagged)                                  AS guardrail_flagged,
    sumState(is_streamed)                                 AS streamed,
    sumState(is_cache_hit)                                AS cache_hits,
    sumState(is_unpriced)                                 AS unpriced,
    sumState(in_tokens)                                   AS prompt_tokens,
    sumState(out_tokens)                                  AS completion_tokens,
    sumState(from_cache)                                  AS cached_tokens,
    sumState(cost)                                        AS cost_usd,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(ok_latency) AS latency_ms,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(ok_ttfb)    AS ttfb_ms,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(overhead)   AS gateway_overhead_ms
FROM
(
    SELECT
        toStartOfHour(toDateTime(ts, 'UTC'))                              AS hour,
        tenant,
        provider,
        model_requested,
        toUInt64(status_code >= 400)                                      AS is_error,
        toUInt64(status_code >= 400 AND status_code < 500 AND status_code != 429) AS is_client_error,
        toUInt64(status_code = 429)                                       AS is_rate_limited,
        toUInt64(status_code >= 500)                                      AS is_server_error,
        toUInt64(has(mapValues(guardrail_outcomes), 'block'))             AS is_blocked,
        toUInt64(NOT has(mapValues(guardrail_outcomes), 'block')
                 AND hasAny(mapValues(guardrail_outcomes), ['flag', 'redact'])) AS is_flagged,
        toUInt64(stream)                                                  AS is_streamed,
        toUInt64(cached_tokens > 0)                                       AS is_cache_hit,
        toUInt64(cost_usd IS NULL)                                        AS is_unpriced,
        toUInt64(prompt_tokens)                                           AS in_tokens,
        toUInt64(completion_tokens)                                       AS out_tokens,
        toUInt64(cached_tokens)                                           AS from_cache,
        cost_usd                                                          AS cost,
        if(status_code < 400, latency_ms, NULL)                           AS ok_latency,
        if(status_code < 400, ttfb_ms, NULL)                              AS ok_ttfb,
        gateway_overhead_ms                                               AS overhead
    FROM requests
)
GROUP BY hour, tenant, provider, model_requested;

-- Backfill: a materialized view sees only the inserts made after it exists, so the rows already in
-- `requests` are aggregated here once. TRUNCATE first makes the pair safe to re-run (a run interrupted
-- after the INSERT started leaves partial rows; the next run starts over) and exact as long as nothing
-- writes `requests` meanwhile, which holds for the embedded store (the sink migrates before its first
-- write and is the only process). On a server with a sink still writing during the migration, rows
-- inserted between the view's creation and this INSERT's snapshot are counted twice: migrate with the
-- sinks stopped, or re-run these two statements by hand later (they rebuild the rollup from scratch).
-- FINAL: a duplicate that reached `requests` (README, De-duplication) is counted once here.
TRUNCATE TABLE IF EXISTS requests_per_hour;

INSERT INTO requests_per_hour
SELECT
    hour,
    tenant,
    provider,
    model_requested,
    countState()                                          AS requests,
    sumState(is_error)                                    AS errors,
    sumState(is_client_error)                             AS client_errors,
    sumState(is_rate_limited)                             AS rate_limited,
    sumState(is_server_error)                             AS server_errors,
    sumState(is_blocked)                                  AS guardrail_blocked,
    sumState(is_flagged)                                  AS guardrail_flagged,
    sumState(is_streamed)                                 AS streamed,
    sumState(is_cache_hit)                                AS cache_hits,
    sumState(is_unpriced)                                 AS unpriced,
    sumState(in_tokens)                                   AS prompt_tokens,
    sumState(out_tokens)                                  AS completion_tokens,
    sumState(from_cache)                                  AS cached_tokens,
    sumState(cost)                                        AS cost_usd,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(ok_latency) AS latency_ms,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(ok_ttfb)    AS ttfb_ms,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(overhead)   AS gateway_overhead_ms
FROM
(
    SELECT
        toStartOfHour(toDateTime(ts, 'UTC'))                              AS hour,
        tenant,
        provider,
        model_requested,
        toUInt64(status_code >= 400)                                      AS is_error,
        toUInt64(status_code >= 400 AND status_code < 500 AND status_code != 429) AS is_client_error,
        toUInt64(status_code = 429)                                       AS is_rate_limited,
        toUInt64(status_code >= 500)                                      AS is_server_error,
        toUInt64(has(mapValues(guardrail_outcomes), 'block'))             AS is_blocked,
        toUInt64(NOT has(mapValues(guardrail_outcomes), 'block')
                 AND hasAny(mapValues(guardrail_outcomes), ['flag', 'redact'])) AS is_flagged,
        toUInt64(stream)                                                  AS is_streamed,
        toUInt64(cached_tokens > 0)                                       AS is_cache_hit,
        toUInt64(cost_usd IS NULL)                                        AS is_unpriced,
        toUInt64(prompt_tokens)                                           AS in_tokens,
        toUInt64(completion_tokens)                                       AS out_tokens,
        toUInt64(cached_tokens)                                           AS from_cache,
        cost_usd                                                          AS cost,
        if(status_code < 400, latency_ms, NULL)                           AS ok_latency,
        if(status_code < 400, ttfb_ms, NULL)                              AS ok_ttfb,
        gateway_overhead_ms                                               AS overhead
    FROM requests FINAL
)
GROUP BY hour, tenant, provider, model_requested;
