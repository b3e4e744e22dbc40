-- Benchmark data (bench/run.sh loads it into a fresh database).
\set ON_ERROR_STOP 1
CREATE EXTENSION pg_tenancy;
CREATE EXTENSION moddatetime;
CREATE SCHEMA bench;
GRANT USAGE ON SCHEMA bench TO authenticated;

-- updated_at: four identical 100k-row tables, one per way of keeping updated_at.
CREATE FUNCTION bench.plpgsql_updated_at() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN NEW.updated_at = now(); RETURN NEW; END $$;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['no_trigger', 'pg_tenancy', 'plpgsql', 'moddatetime'] LOOP
        EXECUTE format('CREATE TABLE bench.%I (id int PRIMARY KEY, v int NOT NULL, note text, updated_at timestamptz NOT NULL DEFAULT now())', t);
        EXECUTE format('INSERT INTO bench.%I (id, v, note) SELECT g, 0, md5(g::text) FROM generate_series(1, 100000) g', t);
    END LOOP;
END $$;
SELECT tenancy.manage_updated_at('bench.pg_tenancy');
CREATE TRIGGER plpgsql_updated_at BEFORE UPDATE ON bench.plpgsql FOR EACH ROW EXECUTE FUNCTION bench.plpgsql_updated_at();
CREATE TRIGGER moddatetime_updated_at BEFORE UPDATE ON bench.moddatetime FOR EACH ROW EXECUTE FUNCTION moddatetime(updated_at);

-- RLS: 1000 tenants, one member each, 1M rows (1000 per tenant) in a table under tenant isolation.
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
INSERT INTO bench.items (tenant_id, created_at, payload)
SELECT ('c0000000-0000-4000-8000-' || lpad((1 + g % 1000)::text, 12, '0'))::uuid,
       '2026-01-01'::timestamptz + g * interval '1 second', md5(g::text)
FROM generate_series(1, 1000000) g;
CREATE INDEX items_latest ON bench.items (tenant_id, created_at DESC);
SELECT tenancy.enable_tenant_isolation('bench.items');
VACUUM ANALYZE;

-- Vault: 10k credentials of a ~200-byte secret in one tenant, and the same secret under pgcrypto.
CREATE EXTENSION pgcrypto;
INSERT INTO tenancy.integrations (tenant_id, id, name, slug, auth_type)
VALUES ('c0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000001', 'Bench', 'bench', 'oauth2');
CREATE TABLE bench.secret AS
SELECT '{"access_token":"' || repeat('A', 120) || '","token_type":"bearer","scope":"chat:write channels:read"}' AS v;
CREATE TABLE bench.cred_ids (n int PRIMARY KEY, id uuid NOT NULL);
DO $$
BEGIN
    PERFORM tenancy.set_tenant('c0000000-0000-4000-8000-000000000001');
    INSERT INTO bench.cred_ids
    SELECT g, tenancy.store_credential('e0000000-0000-4000-8000-000000000001', 'oauth2_tokens', (SELECT v::jsonb FROM bench.secret))
    FROM generate_series(1, 10000) g;
END $$;
CREATE TABLE bench.pgp_store (n int PRIMARY KEY, secret bytea NOT NULL);
INSERT INTO bench.pgp_store SELECT g, pgp_sym_encrypt((SELECT v FROM bench.secret), 'bench-passphrase') FROM generate_series(1, 10000) g;
CREATE TABLE bench.aes_store (n int PRIMARY KEY, secret bytea NOT NULL);
INSERT INTO bench.aes_store
SELECT g, encrypt(convert_to((SELECT v FROM bench.secret), 'UTF8'), decode(repeat('ab', 32), 'hex'), 'aes') FROM generate_series(1, 10000) g;
-- API keys: one per bench tenant (1000), the plaintexts kept here for the scripts to send; the same
-- keys under the alternatives: a SHA-256 lookup table, and bcrypt (cost 10; 100 keys, it is slow).
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
CREATE TABLE bench.sha_keys (key_hash bytea PRIMARY KEY, tenant_id uuid NOT NULL, scopes text[] NOT NULL);
INSERT INTO bench.sha_keys SELECT digest(key, 'sha256'), tenant_id, ARRAY['bench:read'] FROM bench.api_key_plain;
CREATE TABLE bench.bcrypt_keys (n int PRIMARY KEY, tenant_id uuid NOT NULL, key_hash text NOT NULL);
INSERT INTO bench.bcrypt_keys SELECT n, tenant_id, crypt(key, gen_salt('bf', 10)) FROM bench.api_key_plain WHERE n <= 100;
-- Request logs: an action of the bench integration; a plain unpartitioned table indexed (and
-- constrained) like tenancy.request_logs; the ~300-byte request summary the scripts send.
INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template)
VALUES ('c0000000-0000-4000-8000-000000000001', 'f0000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000001',
        'Post message', 'post-message', 'POST', '/api/chat.postMessage');
CREATE TABLE bench.plain_logs (LIKE tenancy.request_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE bench.plain_logs ADD PRIMARY KEY (tenant_id, created_at, id),
    ADD FOREIGN KEY (tenant_id, integration_id, action_id) REFERENCES tenancy.actions (tenant_id, integration_id, id);
CREATE INDEX plain_logs_integration_idx ON bench.plain_logs (tenant_id, integration_id, created_at DESC);
CREATE TABLE bench.copy_logs (LIKE bench.plain_logs INCLUDING ALL);
CREATE TABLE bench.log_summary AS
SELECT '{"method": "POST", "url": "https://slack.com/api/chat.postMessage?channel=C024BE91L", "headers": {"Authorization": "Bearer xoxb-1234567890-abcdefghijkl", "Content-Type": "application/json; charset=utf-8", "User-Agent": "waygate/1.0"}, "body": {"channel": "C024BE91L", "text": "Deploy finished: 42 services, 0 errors"}}'::jsonb AS v;
CREATE TABLE bench.pgp_sink (id bigserial PRIMARY KEY, secret bytea NOT NULL);
CREATE TABLE bench.aes_sink (id bigserial PRIMARY KEY, secret bytea NOT NULL);
VACUUM ANALYZE;

-- JWT: for each of the 1000 bench users, its claims (what PostgREST puts in request.jwt.claims)
-- and its token under each algorithm, in the request.headers form PostgREST sends; bench/run.sh
-- loads them, signed by bench/jwt/tokens.py (PyJWT), with the JWKS of their keys.
CREATE TABLE bench.tokens (t int PRIMARY KEY, claims text NOT NULL, hs256_headers text NOT NULL,
                           es256_headers text NOT NULL, rs256_headers text NOT NULL);

\ir actions/setup.sql
VACUUM ANALYZE;

-- Redaction throughput: one ~16 kB summary (under tenancy.log_summary_max_bytes, so nothing is
-- cut) of 36 order items, without secrets, and the same with one secret of a different kind in
-- every other item (18 in all: provider tokens in messages, key=value in URLs and bodies, header text, a
-- password in a connection string, a JWT).
CREATE TABLE bench.redact_docs (name text PRIMARY KEY, doc jsonb NOT NULL);
INSERT INTO bench.redact_docs
SELECT kind, jsonb_build_object(
    'method', 'POST', 'url', 'https://api.example.com/v1/orders/batch?page=2&per_page=36',
    'headers', jsonb_build_object('Content-Type', 'application/json', 'User-Agent', 'waygate/1.0',
                                  'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'),
    'items', jsonb_agg(jsonb_build_object(
        'id', 'ord_' || lpad(g::text, 8, '0'),
        'customer', 'cus_NffrFeUfNV2H' || g,
        'created_at', '2026-11-' || lpad((1 + g % 28)::text, 2, '0') || 'T12:30:00Z',
        'amount', 1000 + g * 37, 'currency', 'EUR',
        'url', 'https://shop.example.com/orders/' || g || '?ref=newsletter&utm_source=mail',
        'etag', md5(g::text),
        'note', 'Customer asked to ship before Friday; parcel ' || g || ' leaves the Lyon warehouse, tracking sent by email to jane.doe@example.com.',
        'status', CASE WHEN kind = 'secrets' AND g % 2 = 0 THEN
            CASE g % 14
                WHEN 0 THEN 'upstream said: invalid key sk_live_51H8' || md5('a' || g)
                WHEN 2 THEN 'retry with https://hooks.example.com/cb?api_key=' || md5('b' || g) || '&x=1'
                WHEN 4 THEN 'X-Api-Key: ' || md5('c' || g) || E'\r\nAccept: */*'
                WHEN 6 THEN 'db postgres://app:S3cret' || g || '@db.internal/prod unreachable'
                WHEN 8 THEN 'token ghp_' || substr(md5('d' || g) || md5('e' || g), 1, 36) || ' expired'
                WHEN 10 THEN 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI' || g || 'In0.' || md5('f' || g)
                ELSE 'AWS key AKIA' || translate(upper(substr(md5('g' || g), 1, 16)), '0189', 'WXYZ') || ' denied'
            END
            ELSE 'shipped, 2 parcels, signature not required for order ' || g END)
        ORDER BY g))
FROM unnest(ARRAY['clean', 'secrets']) kind, generate_series(1, 36) g
GROUP BY kind;
