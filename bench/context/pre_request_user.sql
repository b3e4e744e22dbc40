-- The envelope plus tenancy.pre_request() with a user and no tenant (JSON, one GUC write).
\set t random(1, 1000)
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"d0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '"}', true), set_config('role', 'authenticated', true), tenancy.pre_request();
COMMIT;
