-- Data of the Citus benchmark (scripts/citus.sh bench): the same rows on the three-node cluster
-- (after tenancy.distribute()) and on one node, for the scripts of bench/ that it runs on both:
-- 1000 tenants with a member and an API key each, 200k rows of a table under tenant isolation
-- (distributed by tenant_id and colocated on Citus), and the request-log bench's integration.
\set ON_ERROR_STOP 1
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO authenticated;
INSERT INTO tenancy.tenants (id, slug, name)
SELECT ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'bench-' || i, 'Bench ' || i FROM generate_series(1, 1000) i;
INSERT INTO tenancy.users (id, email)
SELECT ('d0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'user' || i || '@bench.test' FROM generate_series(1, 1000) i;
INSERT INTO tenancy.memberships (tenant_id, user_id, role)
SELECT ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, ('d0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid, 'member'
FROM generate_series(1, 1000) i;
CREATE TABLE bench.items (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL,
    payload    text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX items_latest ON bench.items (tenant_id, created_at DESC);
SELECT tenancy.enable_tenant_isolation('bench.items');
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM create_distributed_table('bench.items', 'tenant_id', colocate_with => 'tenancy.clients');
    END IF;
END $$;
INSERT INTO bench.items (tenant_id, created_at, payload)
SELECT ('c0000000-0000-4000-8000-' || lpad((1 + g % 1000)::text, 12, '0'))::uuid,
       '2026-01-01'::timestamptz + g * interval '1 second', md5(g::text)
FROM generate_series(1, 200000) g;
CREATE TABLE bench.api_key_plain (n int PRIMARY KEY, tenant_id uuid NOT NULL, id uuid NOT NULL, key text NOT NULL);
DO $$
DECLARE i int; t uuid; k text;
BEGIN
    FOR i IN 1..1000 LOOP
        t := ('c0000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid;
        PERFORM tenancy.set_tenant(t);
        k := tenancy.create_api_key('bench', ARRAY['bench:read']);
        INSERT INTO bench.api_key_plain SELECT i, t, key_id, k FROM tenancy.verify_api_key(k);
    END LOOP;
END $$;
INSERT INTO tenancy.integrations (tenant_id, id, name, slug, auth_type)
VALUES ('c0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000001', 'Bench', 'bench', 'oauth2');
INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template)
VALUES ('c0000000-0000-4000-8000-000000000001', 'f0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000001',
        'Post message', 'post-message', 'POST', '/api/chat.postMessage');
SELECT tenancy.maintain_request_logs();
VACUUM ANALYZE;
