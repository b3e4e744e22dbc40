-- The scaling benchmark's data (scripts/citus.sh scale), on top of bench/citus/setup.sql, grown to
-- :n tenants: tenant i and user i for i in 1..n (ids as setup.sql makes them), user u a member of
-- tenants u .. u+9 (10n memberships: 1M at 100,000 tenants), and an API key per tenant (the
-- first 1,000 real, made by setup.sql; the others rows with a random hash, so that the tables
-- and their indexes have the size of n tenants' keys).  Idempotent: run it with a larger :n to
-- grow the same database.
\set ON_ERROR_STOP 1
INSERT INTO tenancy.tenants (id, slug, name)
SELECT ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'bench-' || i, 'Bench ' || i
  FROM generate_series(1, :n) i
ON CONFLICT DO NOTHING;
INSERT INTO tenancy.users (id, email)
SELECT ('d0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'user' || i || '@bench.test'
  FROM generate_series(1, :n) i
ON CONFLICT DO NOTHING;
INSERT INTO tenancy.memberships (tenant_id, user_id, role)
SELECT ('c0000000-0000-4000-8000-' || lpad((u + k)::text, 12, '0'))::uuid,
       ('d0000000-0000-4000-8000-' || lpad(u::text, 12, '0'))::uuid, 'member'
  FROM generate_series(1, :n) u, generate_series(0, 9) k
 WHERE u + k <= :n
ON CONFLICT DO NOTHING;
INSERT INTO tenancy.api_keys (tenant_id, id, name, prefix)
SELECT ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       ('a5000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'filler', 'tk_live_filler'
  FROM generate_series(1001, :n) i
ON CONFLICT DO NOTHING;
INSERT INTO tenancy_private.api_key_hashes (tenant_id, key_id, key_hash)
SELECT ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid,
       ('a5000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, sha256(i::text::bytea)
  FROM generate_series(1001, :n) i
ON CONFLICT DO NOTHING;
VACUUM ANALYZE tenancy.tenants, tenancy.users, tenancy.memberships, tenancy.api_keys, tenancy_private.api_key_hashes;
