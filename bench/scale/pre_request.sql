-- tenancy.pre_request() for a random one of :ntenants users, in a random one of its 10 tenants
-- (bench/scale/grow.sql): every membership of the database is as likely as any other, so the
-- per-backend caches meet the whole table.
\set u random(1, :ntenants)
\set k random(0, 9)
\set t case when :u + :k > :ntenants then :u else :u + :k end
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub":"d0000000-0000-4000-8000-' || lpad(:u::text, 12, '0') || '","tenant_id":"c0000000-0000-4000-8000-' || lpad(:t::text, 12, '0') || '"}', true), set_config('role', 'authenticated', true), tenancy.pre_request();
COMMIT;
