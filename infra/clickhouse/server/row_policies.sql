-- Row policies for a ClickHouse *server*: a tenant's analysts see only that tenant's rows.
--
-- NOT applied by migrate.py and NOT usable on chDB (the embedded engine has no users, roles or access
-- storage). Run it by hand as an admin, in the gateway's database, after the migrations:
--
--     clickhouse-client --database <db> --multiquery < infra/clickhouse/server/row_policies.sql
--
-- Then, per tenant (replace acme / alice / the password):
--
--     CREATE ROLE IF NOT EXISTS tenant_acme;
--     GRANT gateway_analyst TO tenant_acme;
--     CREATE ROW POLICY IF NOT EXISTS tenant_acme ON requests, events, requests_per_minute, guardrail_verdicts
--         FOR SELECT USING tenant = 'acme' AS permissive TO tenant_acme;
--     CREATE USER IF NOT EXISTS alice IDENTIFIED WITH sha256_password BY '...'
--         DEFAULT ROLE tenant_acme SETTINGS readonly = 1;
--     GRANT tenant_acme TO alice;
--
-- Once a table has any row policy, a user covered by none may see nothing (depending on the server's
-- users_without_row_policies_can_read_rows), so the sink's writer and admins get an explicit
-- see-everything policy below. Keep the sink's user out of the analyst roles.
-- Every statement is syntax-checked against chDB's parser by tests/unit/infra/clickhouse.

CREATE ROLE IF NOT EXISTS gateway_analyst;
CREATE ROLE IF NOT EXISTS gateway_admin;

GRANT SELECT ON requests TO gateway_analyst;
GRANT SELECT ON events TO gateway_analyst;
GRANT SELECT ON requests_per_minute TO gateway_analyst;
GRANT SELECT ON guardrail_verdicts TO gateway_analyst;

GRANT SELECT, INSERT ON requests TO gateway_admin;
GRANT SELECT, INSERT ON events TO gateway_admin;
GRANT SELECT, INSERT ON requests_per_minute TO gateway_admin;
GRANT SELECT, INSERT ON guardrail_verdicts TO gateway_admin;

-- gateway_events (0003) is NOT per tenant: it records what happened to the gateway itself (breaker
-- transitions per target, config versions), has no tenant column and so no row policy; whoever may
-- SELECT it sees all of it. Its target ids and reasons describe every tenant's routes, so it is not
-- granted to gateway_analyst: `GRANT SELECT ON gateway_events TO gateway_analyst` if your tenants may
-- see gateway-wide operations.
GRANT SELECT, INSERT ON gateway_events TO gateway_admin;

-- Admins and the sink see every tenant.
CREATE ROW POLICY IF NOT EXISTS gateway_all_tenants ON requests, events, requests_per_minute
    FOR SELECT USING 1 AS permissive TO gateway_admin;

-- guardrail_verdicts (0004) is per tenant like requests: the same see-everything policy for admins, in
-- its own statement so that re-running this file on a server set up before 0004 adds it. Such a server
-- also needs one policy per existing tenant role, created BEFORE re-running this file (which grants the
-- table to gateway_analyst): a role covered by no policy on a table may otherwise read all its rows,
-- depending on the server's users_without_row_policies_can_read_rows:
--
--     CREATE ROW POLICY IF NOT EXISTS tenant_acme ON guardrail_verdicts
--         FOR SELECT USING tenant = 'acme' AS permissive TO tenant_acme;
CREATE ROW POLICY IF NOT EXISTS gateway_all_tenants ON guardrail_verdicts
    FOR SELECT USING 1 AS permissive TO gateway_admin;

-- The hourly rollups (0009, 0010). requests_per_hour, key_spend_per_hour and guardrail_outcomes_per_hour
-- are per tenant: the same see-everything policy for admins, and, on a server set up before 0009, one
-- policy per existing tenant role created BEFORE re-running this file (as for guardrail_verdicts above):
--
--     CREATE ROW POLICY IF NOT EXISTS tenant_acme ON requests_per_hour, key_spend_per_hour,
--         guardrail_outcomes_per_hour FOR SELECT USING tenant = 'acme' AS permissive TO tenant_acme;
GRANT SELECT ON requests_per_hour TO gateway_analyst;
GRANT SELECT ON key_spend_per_hour TO gateway_analyst;
GRANT SELECT ON guardrail_outcomes_per_hour TO gateway_analyst;
GRANT SELECT, INSERT ON requests_per_hour TO gateway_admin;
GRANT SELECT, INSERT ON key_spend_per_hour TO gateway_admin;
GRANT SELECT, INSERT ON guardrail_outcomes_per_hour TO gateway_admin;
CREATE ROW POLICY IF NOT EXISTS gateway_all_tenants ON requests_per_hour, key_spend_per_hour, guardrail_outcomes_per_hour
    FOR SELECT USING 1 AS permissive TO gateway_admin;

-- provider_requests_per_hour (0010) has no tenant column, like gateway_events: every provider's latency
-- over all tenants' traffic, for the gateway's operators. Not granted to gateway_analyst.
GRANT SELECT, INSERT ON provider_requests_per_hour TO gateway_admin;
