-- 0008_batches: batch lines on the request's row. Every line of a batch job (/v1/batches, Anthropic's
-- Message Batches) and every async request (x-gateway-async) is one request through the chain, recorded
-- like any other, and carries its job id and its custom_id, so a job's cost, errors and latency are one
-- GROUP BY away. Idempotent (ADD COLUMN IF NOT EXISTS); rows written before it read as ''.
--
-- Queries: the cost and outcome of one batch
--   SELECT count() AS lines, countIf(status_code = 200) AS ok, sum(cost_usd) AS usd
--   FROM requests FINAL WHERE batch_id = 'batch_…';
-- per tenant per day, batch traffic against interactive
--   SELECT tenant, toDate(ts) AS day, batch_id != '' AS batch, count(), sum(cost_usd)
--   FROM requests FINAL GROUP BY tenant, day, batch ORDER BY day, tenant;
ALTER TABLE requests
    ADD COLUMN IF NOT EXISTS batch_id String DEFAULT ''
        COMMENT 'the batch job (batch_…, async_…) this request is a line of; empty for interactive requests';
ALTER TABLE requests
    ADD COLUMN IF NOT EXISTS custom_id String DEFAULT ''
        COMMENT 'the line''s custom_id in its batch input file (Anthropic: the request''s custom_id)';
