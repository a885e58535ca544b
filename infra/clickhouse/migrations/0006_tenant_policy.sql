-- 0006_tenant_policy: what the tenant policy ruled out, on the request's row. A key, team or tenant may
-- require provider tags (region, compliance) or allow only some providers; the routing stage leaves the
-- targets that do not qualify out of the plan (never tried) and records each with why. The request's
-- RequestCompleted carries them (`skipped_targets`), the sink writes them here.
-- Idempotent like every migration (ADD COLUMN IF NOT EXISTS). Rows written before it read as {}.
--
-- Queries: `mapKeys(policy_skips)` (the target ids ruled out), `policy_skips['mock-openai/gpt-4o-mini']`
-- (why), `notEmpty(policy_skips)` (requests the policy narrowed), and with `error_code = 'policy_denied'`
-- the requests it refused.
ALTER TABLE requests
    ADD COLUMN IF NOT EXISTS policy_skips Map(String, String) DEFAULT map()
        COMMENT 'target id (provider/model) -> why the tenant policy ruled it out, e.g. region=us, needs eu';
