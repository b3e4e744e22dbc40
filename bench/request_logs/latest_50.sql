-- A tenant's dashboard: its 50 latest requests, the PostgREST way (claims, role, pre-request
-- hook; RLS chooses the rows), over 10M rows of 1,000 tenants in daily partitions.
\set t random(1, 1000)
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"d0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '","tenant_id":"c0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '"}', true), set_config('role', 'authenticated', true), tenancy.pre_request();
SELECT id, created_at, action_id, status_code, latency_ms FROM tenancy.request_logs ORDER BY created_at DESC LIMIT 50;
COMMIT;
