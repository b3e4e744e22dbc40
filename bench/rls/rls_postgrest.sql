-- pg_tenancy: authenticated, the same envelope plus the db-pre-request hook (membership check),
-- and no WHERE: RLS chooses the rows.  The hook is called in the set_config statement so that
-- both sides send the same number of statements.
\set t random(1, 1000)
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"d0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '","tenant_id":"c0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '"}', true), set_config('role', 'authenticated', true), tenancy.pre_request();
SELECT id, created_at, payload FROM bench.items ORDER BY created_at DESC LIMIT 20;
COMMIT;
