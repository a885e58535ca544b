-- 0007_audit_log: the tamper-evident audit log (schemas/audit.py). One row per control-plane change
-- (config applied, key created/updated/revoked/rotated, team or tenant budget set, breaker forced) and
-- per guardrail block, in ONE order: `seq` is contiguous from 1, and every row carries
-- hash = hex(sha256(unhex(prev_hash) || canonical row)), the canonical row being the JSON array
-- [seq, ts_ms, kind, actor, subject, action, detail, entry_id, prev_hash] (see infra/clickhouse/README.md).
-- The sink is the only writer (its `audit` consumer on the GW_AUDIT stream); `gateway audit verify`
-- recomputes the chain. Plain MergeTree, never deduplicated or merged away: a second row with a seq is
-- evidence, not noise. No TTL, no tenant (gateway-wide, like gateway_events).
CREATE TABLE IF NOT EXISTS audit_log
(
    seq UInt64 COMMENT 'position in the chain, contiguous from 1',
    ts DateTime64(3, 'UTC') COMMENT 'when the change happened (hashed as epoch milliseconds)',
    kind LowCardinality(String) COMMENT 'config | key | budget | breaker | guardrail_block',
    actor String COMMENT 'who: apply:user@host, file:<path>, cli:user@host, admin-api, gateway (self-reported)',
    subject String COMMENT 'what: config version, key.<id>, team.<id>, tenant.<id>, target id, request id',
    action LowCardinality(String) COMMENT 'applied, created, updated, revoked, rotated, set, forced, blocked',
    detail String COMMENT 'canonical JSON (sorted keys, no whitespace, ASCII): before/after summary, no secrets',
    entry_id String COMMENT 'the producer''s id of the change (a UUIDv7, or block:<request_id>)',
    prev_hash String COMMENT 'hash of the row seq - 1 (64 zeros before seq 1)',
    hash String COMMENT 'hex sha256(unhex(prev_hash) || canonical row)'
)
ENGINE = MergeTree
ORDER BY seq;
