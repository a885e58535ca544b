-- 0005_governance: budgets and rate limits on every request's row (the policy stage's admission).
-- Idempotent like every migration (ADD COLUMN IF NOT EXISTS). Rows written before it read as '' / [] / 0.
--
-- reserved_usd: the maximum cost the request held on each limited scope until it was settled (its
-- actual cost is cost_usd; cost_usd > reserved_usd is an overshoot, noted in governance_notes).
-- limit_refused: the limit that refused the request, '' when admitted ('key.k1 budget', 'team.x rpm',
-- 'tenant.t tpm', 'key.k1 unpriced'). The soft-threshold alerts are gateway_events rows (kind = 'budget').
ALTER TABLE requests
    ADD COLUMN IF NOT EXISTS team LowCardinality(String) DEFAULT ''
        COMMENT 'the key''s team; '''' when none' AFTER api_key_id,
    ADD COLUMN IF NOT EXISTS reserved_usd Decimal(18, 9) DEFAULT 0
        COMMENT 'the maximum cost reserved on the limited scopes (0 when none)' AFTER cost_usd,
    ADD COLUMN IF NOT EXISTS limit_scopes Array(LowCardinality(String)) DEFAULT []
        COMMENT 'the ledger scopes that held the request (key.k1, team.x, tenant.t, key.k1.m.<alias>)'
        AFTER reserved_usd,
    ADD COLUMN IF NOT EXISTS limit_refused LowCardinality(String) DEFAULT ''
        COMMENT 'the limit that refused the request; '''' when admitted' AFTER limit_scopes,
    ADD COLUMN IF NOT EXISTS governance_notes Array(LowCardinality(String)) DEFAULT []
        COMMENT 'unpriced_allowed | overshoot' AFTER limit_refused;
