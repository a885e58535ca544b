-- 0004_guardrails: the guardrail audit trail. Every guardrail that ran on a request (passes included)
-- left a Verdict on the envelope; the request's RequestCompleted carries them and the sink writes one
-- row each, in the same unit (and under the same de-duplication by request_id) as the request's row.
-- Idempotent like every migration (CREATE TABLE IF NOT EXISTS, ADD COLUMN IF NOT EXISTS).
--
-- NO RAW VALUES are stored here, by construction: a verdict records the guardrail, its outcome, its
-- score and `findings`, a map of finding TYPE (entity type, rule id) to COUNT. Never the matched text,
-- never the prompt or the answer. The sink drops finding types that do not look like an identifier.

-- One row per verdict. ReplacingMergeTree keyed by the ORDER BY, like `requests`: the sink's dedupe set
-- keeps a redelivered RequestCompleted from writing its verdicts again; beyond its window, or across
-- several sinks, the copies collapse on merge (`seq` is the verdict's position in the request's list,
-- so (request_id, guardrail, seq) names one verdict). Use FINAL where exact counts matter before merges.
CREATE TABLE IF NOT EXISTS guardrail_verdicts
(
    request_id      UUID,
    seq             UInt16 COMMENT 'position of the verdict in the request''s list (0-based)',
    ts              DateTime64(3, 'UTC') COMMENT 'request accepted at ingress (as requests.ts)',
    tenant          LowCardinality(String),
    api_key_id      LowCardinality(String),
    user            String,
    model_requested LowCardinality(String) COMMENT 'the route alias the caller asked for',
    route_path      LowCardinality(String) COMMENT 'tree path of the routing target that answered; '''' if none',
    provider        LowCardinality(String),
    profile         LowCardinality(String) COMMENT 'the guardrail profile the request ran',
    guardrail       LowCardinality(String) COMMENT 'the name the profile gives it',
    kind            LowCardinality(String) COMMENT 'the implementation (entry-point name), e.g. prompt_injection',
    phase           LowCardinality(String) COMMENT 'input | output',
    outcome         LowCardinality(String) COMMENT 'pass | flag | block | redact',
    score           Float32,
    findings        Map(LowCardinality(String), UInt16) COMMENT 'finding type -> count; never values',
    duration_ms     Float32 COMMENT 'time the guardrail took on this request',
    status_code     UInt16 COMMENT 'the status the request ended with',
    delivery        UInt16 COMMENT 'JetStream delivery count of the request that produced this row',
    schema_version  UInt8,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    INDEX idx_request_id request_id TYPE bloom_filter(0.001) GRANULARITY 4,
    INDEX idx_api_key_id api_key_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_model_requested model_requested TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (tenant, toStartOfHour(ts), guardrail, request_id, seq);

-- What the guardrails decided, on the request's own row, so analysts can filter requests without a
-- join. Rows written before this migration read as '' / {}.
ALTER TABLE requests
    ADD COLUMN IF NOT EXISTS guardrail_profile LowCardinality(String) DEFAULT ''
        COMMENT 'the guardrail profile the request ran; '''' when none' AFTER output_findings,
    ADD COLUMN IF NOT EXISTS guardrail_outcomes Map(LowCardinality(String), LowCardinality(String)) DEFAULT map()
        COMMENT 'guardrail -> outcome (pass | flag | block | redact); the most severe if it ran twice'
        AFTER guardrail_profile;
