-- Baseline: a superuser (RLS bypassed), PostgREST's request envelope, explicit WHERE tenant_id.
\set t random(1, 1000)
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"d0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '","tenant_id":"c0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '"}', true), set_config('role', 'postgres', true);
SELECT id, created_at, payload FROM bench.items WHERE tenant_id = ('c0000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid ORDER BY created_at DESC LIMIT 20;
COMMIT;
