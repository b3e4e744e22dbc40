-- 10M request logs of 1,000 tenants over 10 days, in daily partitions (bench/run.sh, once).
\set ON_ERROR_STOP 1
INSERT INTO tenancy.integrations (tenant_id, id, name, slug, auth_type)
SELECT ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('e1000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       'Logs', 'logs', 'oauth2'
FROM generate_series(1, 1000) i;
INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template)
SELECT ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('f1000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       ('e1000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'List items', 'list-items', 'GET', '/v1/items'
FROM generate_series(1, 1000) i;
SELECT tenancy.maintain_request_logs('3650 days', 9, timestamptz '2026-06-01 00:00:00+00');
-- Bulk load: the foreign keys are known to hold (the rows are generated from the rows above), so
-- their per-row checks are skipped for the load only.
SET session_replication_role = replica;
INSERT INTO tenancy.request_logs (tenant_id, integration_id, action_id, request_summary, response_summary, status_code, latency_ms, created_at)
SELECT ('c0000000-0000-4000-8000-' || lpad((1 + g % 1000)::text, 12, '0'))::uuid,
       ('e1000000-0000-4000-8000-' || lpad((1 + g % 1000)::text, 12, '0'))::uuid,
       ('f1000000-0000-4000-8000-' || lpad((1 + g % 1000)::text, 12, '0'))::uuid,
       jsonb_build_object('method', 'GET', 'url', 'https://api.example.com/v1/items/' || g),
       '{"status": 200}', CASE WHEN g % 50 = 0 THEN 500 ELSE 200 END, g % 700,
       timestamptz '2026-06-01 00:00:00+00' + g * interval '86.4 milliseconds'
FROM generate_series(1, 10000000) g;
RESET session_replication_role;
VACUUM ANALYZE tenancy.request_logs;
