-- PostgREST envelope only: claims and role, no hook (the floor).
\set t random(1, 1000)
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"d0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '","tenant_id":"c0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '"}', true), set_config('role', 'authenticated', true);
COMMIT;
