-- 0010_operator_rollups: three more hourly rollups, for the analyst questions that 0009's
-- requests_per_hour answers too slowly at 10 million requests (bench/analytics_bench.py, README
-- "Analytics at scale"):
--   provider_requests_per_hour  p95 latency per provider per hour, TTFT per provider and model: without
--                               tenant in the key, an hour of a provider is a few rows (one per model)
--                               instead of ~80 (per tenant and model), so the t-digests are merged at
--                               insert and merge time, not at query time;
--   key_spend_per_hour          spend per API key: no quantile states, one row per key and hour;
--   guardrail_outcomes_per_hour what the guardrails decided, from guardrail_verdicts (~2 rows a request).
-- Same conventions as 0009 (read with -Merge and GROUP BY; quantiles over successful requests; the
-- backfill TRUNCATEs first so a re-run rebuilds; caveats in infra/clickhouse/README.md).
--
-- provider_requests_per_hour has no tenant column: it is a gateway operator's view (like
-- gateway_events), not granted to tenant analysts by server/row_policies.sql.

CREATE TABLE IF NOT EXISTS provider_requests_per_hour
(
    hour                DateTime('UTC'),
    provider            LowCardinality(String),
    model_requested     LowCardinality(String),
    requests            AggregateFunction(count),
    errors              AggregateFunction(sum, UInt64) COMMENT 'status >= 400',
    streamed            AggregateFunction(sum, UInt64),
    latency_ms          AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Nullable(Float32))
        COMMENT 'successful requests only',
    ttfb_ms             AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), Nullable(Float32))
        COMMENT 'streamed successful requests only'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, provider, model_requested);

CREATE MATERIALIZED VIEW IF NOT EXISTS provider_requests_per_hour_mv TO provider_requests_per_hour AS
SELECT
    hour, provider, model_requested,
    countState()                                            AS requests,
    sumState(is_error)                                      AS errors,
    sumState(is_streamed)                                   AS streamed,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(ok_latency) AS latency_ms,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(ok_ttfb)    AS ttfb_ms
FROM
(
    SELECT
        toStartOfHour(toDateTime(ts, 'UTC'))    AS hour,
        provider,
        model_requested,
        toUInt64(status_code >= 400)            AS is_error,
        toUInt64(stream)                        AS is_streamed,
        if(status_code < 400, latency_ms, NULL) AS ok_latency,
        if(status_code < 400, ttfb_ms, NULL)    AS ok_ttfb
    FROM requests
)
GROUP BY hour, provider, model_requested;

CREATE TABLE IF NOT EXISTS key_spend_per_hour
(
    hour              DateTime('UTC'),
    tenant            LowCardinality(String),
    api_key_id        LowCardinality(String),
    team              LowCardinality(String),
    requests          AggregateFunction(count),
    unpriced          AggregateFunction(sum, UInt64) COMMENT 'cost_usd IS NULL',
    prompt_tokens     AggregateFunction(sum, UInt64),
    completion_tokens AggregateFunction(sum, UInt64),
    cost_usd          AggregateFunction(sum, Nullable(Decimal(18, 9)))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, api_key_id, team);

CREATE MATERIALIZED VIEW IF NOT EXISTS key_spend_per_hour_mv TO key_spend_per_hour AS
SELECT
    hour, tenant, api_key_id, team,
    countState()          AS requests,
    sumState(is_unpriced) AS unpriced,
    sumState(in_tokens)   AS prompt_tokens,
    sumState(out_tokens)  AS completion_tokens,
    sumState(cost)        AS cost_usd
FROM
(
    SELECT
        toStartOfHour(toDateTime(ts, 'UTC')) AS hour,
        tenant,
        api_key_id,
        team,
        toUInt64(cost_usd IS NULL)           AS is_unpriced,
        toUInt64(prompt_tokens)              AS in_tokens,
        toUInt64(completion_tokens)          AS out_tokens,
        cost_usd                             AS cost
    FROM requests
)
GROUP BY hour, tenant, api_key_id, team;

CREATE TABLE IF NOT EXISTS guardrail_outcomes_per_hour
(
    hour        DateTime('UTC'),
    tenant      LowCardinality(String),
    profile     LowCardinality(String),
    guardrail   LowCardinality(String),
    phase       LowCardinality(String),
    outcome     LowCardinality(String),
    verdicts    AggregateFunction(count),
    duration_ms AggregateFunction(sum, Float64) COMMENT 'total time the guardrail took, for averages'
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, profile, guardrail, phase, outcome);

CREATE MATERIALIZED VIEW IF NOT EXISTS guardrail_outcomes_per_hour_mv TO guardrail_outcomes_per_hour AS
SELECT
    hour, tenant, profile, guardrail, phase, outcome,
    countState()    AS verdicts,
    sumState(took)  AS duration_ms
FROM
(
    SELECT toStartOfHour(toDateTime(ts, 'UTC')) AS hour, tenant, profile, guardrail, phase, outcome,
           toFloat64(duration_ms) AS took
    FROM guardrail_verdicts
)
GROUP BY hour, tenant, profile, guardrail, phase, outcome;

-- Backfills (see 0009: TRUNCATE first, so a re-run rebuilds; exact when nothing writes meanwhile).
TRUNCATE TABLE IF EXISTS provider_requests_per_hour;

INSERT INTO provider_requests_per_hour
SELECT
    hour, provider, model_requested,
    countState()                                            AS requests,
    sumState(is_error)                                      AS errors,
    sumState(is_streamed)                                   AS streamed,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(ok_latency) AS latency_ms,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(ok_ttfb)    AS ttfb_ms
FROM
(
    SELECT
        toStartOfHour(toDateTime(ts, 'UTC'))    AS hour,
        provider,
        model_requested,
        toUInt64(status_code >= 400)            AS is_error,
        toUInt64(stream)                        AS is_streamed,
        if(status_code < 400, latency_ms, NULL) AS ok_latency,
        if(status_code < 400, ttfb_ms, NULL)    AS ok_ttfb
    FROM requests FINAL
)
GROUP BY hour, provider, model_requested;

TRUNCATE TABLE IF EXISTS key_spend_per_hour;

INSERT INTO key_spend_per_hour
SELECT
    hour, tenant, api_key_id, team,
    countState()          AS requests,
    sumState(is_unpriced) AS unpriced,
    sumState(in_tokens)   AS prompt_tokens,
    sumState(out_tokens)  AS completion_tokens,
    sumState(cost)        AS cost_usd
FROM
(
    SELECT
        toStartOfHour(toDateTime(ts, 'UTC')) AS hour,
        tenant,
        api_key_id,
        team,
        toUInt64(cost_usd IS NULL)           AS is_unpriced,
        toUInt64(prompt_tokens)              AS in_tokens,
        toUInt64(completion_tokens)          AS out_tokens,
        cost_usd                             AS cost
    FROM requests FINAL
)
GROUP BY hour, tenant, api_key_id, team;

TRUNCATE TABLE IF EXISTS guardrail_outcomes_per_hour;

INSERT INTO guardrail_outcomes_per_hour
SELECT
    hour, tenant, profile, guardrail, phase, outcome,
    countState()    AS verdicts,
    sumState(took)  AS duration_ms
FROM
(
    SELECT toStartOfHour(toDateTime(ts, 'UTC')) AS hour, tenant, profile, guardrail, phase, outcome,
           toFloat64(duration_ms) AS took
    FROM guardrail_verdicts FINAL
)
GROUP BY hour, tenant, profile, guardrail, phase, outcome;
