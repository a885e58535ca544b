-- 0001_init: the analyst tables of the gateway.
-- Applied by infra/clickhouse/migrate.py, once, tracked in schema_migrations. Every statement is
-- idempotent (IF NOT EXISTS) so a migration interrupted half-way can simply be re-run.
-- All timestamps are UTC, millisecond precision. Table and column names are a public API for analysts:
-- add columns in new numbered files, never rename or drop here.

-- One row per request, final state (RequestCompleted). ReplacingMergeTree keyed by the ORDER BY
-- collapses a duplicate row written by a second sink; the sink's de-duplication set is the first line.
CREATE TABLE IF NOT EXISTS requests
(
    request_id          UUID,
    event_id            UUID,
    ts                  DateTime64(3, 'UTC') COMMENT 'request accepted at ingress',
    finished_at         DateTime64(3, 'UTC'),
    tenant              LowCardinality(String),
    api_key_id          LowCardinality(String),
    user                String,
    endpoint            LowCardinality(String),
    model_requested     LowCardinality(String),
    model_served        LowCardinality(String),
    provider            LowCardinality(String),
    stream              Bool,
    status_code         UInt16,
    error_type          LowCardinality(String),
    error_code          LowCardinality(String),
    error_message       String,
    prompt_tokens       UInt32,
    completion_tokens   UInt32,
    total_tokens        UInt32 MATERIALIZED prompt_tokens + completion_tokens,
    usage_source        LowCardinality(String) COMMENT 'provider | estimated | none',
    cost_usd            Nullable(Decimal(18, 9)) COMMENT 'NULL = unpriced (no price known), never 0 for unknown',
    priced              Bool MATERIALIZED cost_usd IS NOT NULL,
    latency_ms          Float32,
    ttfb_ms             Nullable(Float32) COMMENT 'time to first byte/token; NULL when not streamed or failed first',
    provider_ms         Float32,
    gateway_overhead_ms Float32,
    attempts            UInt8,
    redactions          UInt16,
    redaction_counts    Map(LowCardinality(String), UInt16) COMMENT 'entity type -> count, never values',
    output_findings     Map(LowCardinality(String), UInt16),
    delivery            UInt16 COMMENT 'JetStream delivery count of the request that produced this row',
    stage_ms            Map(LowCardinality(String), Float32),
    request_body        String TTL toDateTime(ts) + INTERVAL 30 DAY COMMENT 'redacted; cleared after 30 days',
    response_body       String TTL toDateTime(ts) + INTERVAL 30 DAY COMMENT 'redacted; cleared after 30 days',
    stage               LowCardinality(String) COMMENT 'the stage that finished the request',
    schema_version      UInt8,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_inserted_at inserted_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toStartOfMinute(ts), request_id);

-- One row per stage event (StageEvent) plus one 'request.completed' row per RequestCompleted: the audit
-- trail and the trace of each request. Plain MergeTree: a redelivered event may appear twice (see
-- `delivery`); count DISTINCT event_id when it matters.
CREATE TABLE IF NOT EXISTS events
(
    event_id       UUID,
    request_id     UUID,
    ts             DateTime64(3, 'UTC'),
    stage          LowCardinality(String),
    type           LowCardinality(String),
    status         LowCardinality(String) COMMENT 'ok | error',
    tenant         LowCardinality(String),
    api_key_id     LowCardinality(String),
    duration_ms    Float32,
    delivery       UInt16,
    attrs          String COMMENT 'JSON object; counts and types only, never PII values',
    schema_version UInt8,
    inserted_at    DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toStartOfHour(ts), request_id, ts);

-- Per-minute rollup of requests. Read it with the -Merge combinators, grouping by the key columns
-- (several partial rows per key exist until background merges run). See README for examples.
CREATE TABLE IF NOT EXISTS requests_per_minute
(
    minute              DateTime('UTC'),
    tenant              LowCardinality(String),
    model_requested     LowCardinality(String),
    provider            LowCardinality(String),
    status_code         UInt16,
    requests            AggregateFunction(count),
    errors              AggregateFunction(sum, UInt64),
    unpriced            AggregateFunction(sum, UInt64),
    prompt_tokens       AggregateFunction(sum, UInt32),
    completion_tokens   AggregateFunction(sum, UInt32),
    cost_usd            AggregateFunction(sum, Nullable(Decimal(18, 9))),
    latency_ms          AggregateFunction(quantilesTDigest(0.5, 0.9, 0.99), Float32),
    gateway_overhead_ms AggregateFunction(quantilesTDigest(0.5, 0.9, 0.99), Float32)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (tenant, minute, model_requested, provider, status_code);

-- The inner SELECT names the inputs so no aggregate alias (e.g. cost_usd) shadows a source column.
CREATE MATERIALIZED VIEW IF NOT EXISTS requests_per_minute_mv TO requests_per_minute AS
SELECT
    minute,
    tenant,
    model_requested,
    provider,
    status_code,
    countState()                                         AS requests,
    sumState(is_error)                                   AS errors,
    sumState(is_unpriced)                                AS unpriced,
    sumState(in_tokens)                                  AS prompt_tokens,
    sumState(out_tokens)                                 AS completion_tokens,
    sumState(cost)                                       AS cost_usd,
    quantilesTDigestState(0.5, 0.9, 0.99)(latency)       AS latency_ms,
    quantilesTDigestState(0.5, 0.9, 0.99)(overhead)      AS gateway_overhead_ms
FROM
(
    SELECT
        toStartOfMinute(toDateTime(ts, 'UTC')) AS minute,
        tenant,
        model_requested,
        provider,
        status_code,
        toUInt64(status_code >= 400)            AS is_error,
        toUInt64(cost_usd IS NULL)              AS is_unpriced,
        prompt_tokens                           AS in_tokens,
        completion_tokens                       AS out_tokens,
        cost_usd                                AS cost,
        latency_ms                              AS latency,
        gateway_overhead_ms                     AS overhead
    FROM requests
)
GROUP BY minute, tenant, model_requested, provider, status_code;
