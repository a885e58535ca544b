-- 0003_routing: request tags and the routing decision on every request, and the gateway's own events.
-- Idempotent like every migration (ADD COLUMN IF NOT EXISTS, CREATE TABLE IF NOT EXISTS).

-- What the caller said about the request (x-gateway-tags) and what routing decided for it. Rows
-- written before this migration read as empty ('' / {}).
ALTER TABLE requests
    ADD COLUMN IF NOT EXISTS tags Map(LowCardinality(String), String) DEFAULT map()
        COMMENT 'x-gateway-tags: caller-chosen string tags (at most 32)' AFTER user,
    ADD COLUMN IF NOT EXISTS route_path LowCardinality(String) DEFAULT ''
        COMMENT 'tree path of the routing target that answered' AFTER provider,
    ADD COLUMN IF NOT EXISTS experiment LowCardinality(String) DEFAULT ''
        COMMENT 'the experiment the request took part in, if any' AFTER route_path,
    ADD COLUMN IF NOT EXISTS variant LowCardinality(String) DEFAULT ''
        COMMENT 'the experiment variant it was assigned' AFTER experiment,
    ADD COLUMN IF NOT EXISTS config_version LowCardinality(String) DEFAULT ''
        COMMENT 'the gateway config version routing planned with' AFTER variant;

-- One row per ControlEvent: something that happened to the gateway rather than to one request (a
-- circuit breaker changed state; a config version was applied or taken up by a worker). Not per
-- tenant: no tenant column and no row policy (see server/row_policies.sql). Plain MergeTree like
-- `events`: a redelivered event may appear twice, count DISTINCT event_id when it matters.
CREATE TABLE IF NOT EXISTS gateway_events
(
    event_id       UUID,
    ts             DateTime64(3, 'UTC'),
    kind           LowCardinality(String) COMMENT 'breaker | config',
    subject        LowCardinality(String) COMMENT 'breaker: the target id; config: the version',
    from_state     LowCardinality(String),
    to_state       LowCardinality(String),
    reason         LowCardinality(String),
    source         LowCardinality(String) COMMENT 'the process that recorded it, e.g. routing-1234',
    config_version LowCardinality(String),
    attrs          String COMMENT 'JSON object',
    schema_version UInt8,
    inserted_at    DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (kind, subject, ts);
