-- pg_tenancy walkthrough (run by scripts/demo.sh).  Every step prints what it shows.
\set QUIET 1
\pset pager off
\pset null '(null)'
\set ECHO queries

\echo
\echo '=== 1. Install: CREATE EXTENSION (the library is in shared_preload_libraries) ==='
CREATE EXTENSION pg_tenancy;
SELECT extname, extversion, extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'pg_tenancy';

\echo
\echo '=== 2. Demo data: two tenants, a user per role, a Slack mock integration (idempotent) ==='
SELECT jsonb_pretty(tenancy.seed_demo() -> 'tenants') AS tenants;
SELECT t.slug AS tenant, u.name AS user, m.role
FROM tenancy.memberships m JOIN tenancy.tenants t ON t.id = m.tenant_id JOIN tenancy.users u ON u.id = m.user_id
ORDER BY t.slug, m.role, u.name;

\echo
\echo '=== 3. Health ==='
SELECT jsonb_pretty(tenancy.health(exact_counts => true) - 'row_counts') AS health;

-- A login role like PostgREST's authenticator, and a helper that shows a refused statement.
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN
        CREATE ROLE authenticator LOGIN NOINHERIT;
    END IF;
END $$;
GRANT anon, authenticated, service_role TO authenticator;
CREATE FUNCTION public.try(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $$;
GRANT EXECUTE ON FUNCTION public.try(text) TO PUBLIC;

\echo
\echo '=== 4. Tenant context, the PostgREST way: SET LOCAL ROLE, JWT claims, db-pre-request hook ==='
\c - authenticator
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims',
  '{"sub": "00000000-0000-4000-8000-0000000000a2", "role": "authenticated",
    "app_metadata": {"tenant_id": "a0000000-0000-4000-8000-000000000001"}}', true) IS NOT NULL AS claims_set;
SELECT tenancy.pre_request();
SELECT tenancy.current_tenant_id(), tenancy.current_user_id(), tenancy.current_role();
\echo '--- Bob (acme admin) sees acme rows only, with no WHERE tenant_id = ... anywhere:'
SELECT c.name AS client, p.name AS project, p.status FROM tenancy.projects p JOIN tenancy.clients c USING (tenant_id) WHERE c.id = p.client_id ORDER BY 1, 2;
SELECT slug, name FROM tenancy.integrations;
SELECT count(*) AS request_logs_visible FROM tenancy.request_logs;
\echo '--- Attempts to reach globex fail or see nothing:'
SELECT public.try($$INSERT INTO tenancy.clients (tenant_id, name) VALUES ('b0000000-0000-4000-8000-000000000002', 'sneaky')$$) AS insert_into_globex;
SELECT public.try($$UPDATE tenancy.clients SET tenant_id = 'b0000000-0000-4000-8000-000000000002'$$) AS move_rows_to_globex;
SELECT public.try($$SET tenancy.context = 'b0000000-0000-4000-8000-000000000002,,owner'$$) AS forge_with_set;
SELECT public.try($$SELECT set_config('tenancy.context', 'b0000000-0000-4000-8000-000000000002,,owner', true)$$) AS forge_with_set_config;
SELECT public.try($$SELECT tenancy.set_tenant('b0000000-0000-4000-8000-000000000002')$$) AS set_tenant_globex;
SELECT public.try($$INSERT INTO tenancy.projects (tenant_id, client_id, name) VALUES ('a0000000-0000-4000-8000-000000000001', 'b2000000-0000-4000-8000-000000000701', 'x')$$) AS reference_a_globex_client;
SELECT public.try($$UPDATE tenancy.request_logs SET status_code = 200$$) AS rewrite_request_logs;
COMMIT;
\echo '--- After COMMIT the context is gone (fail closed):'
BEGIN;
SET LOCAL ROLE authenticated;
SELECT tenancy.current_tenant_id() AS tenant_after_commit, count(*) AS projects_visible FROM tenancy.projects;
ROLLBACK;

\echo
\echo '=== 5. Alice belongs to two tenants and switches between them ==='
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000a1", "role": "authenticated"}', true) IS NOT NULL AS claims_set;
SELECT tenancy.pre_request();
SELECT tenant_id, role FROM tenancy.memberships WHERE user_id = tenancy.current_user_id();
SELECT tenancy.set_tenant('b0000000-0000-4000-8000-000000000002') AS role_in_globex;
SELECT name FROM tenancy.projects;
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001') AS role_in_acme;
SELECT name FROM tenancy.projects ORDER BY 1;
COMMIT;

\echo
\echo '=== 6. Roles inside a tenant: Dave (member) cannot see API keys or credentials; Erin (client) reads only ==='
BEGIN;
SET LOCAL ROLE service_role;
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001', as_user => '00000000-0000-4000-8000-0000000000a4') AS dave;
SET LOCAL ROLE authenticated;
SELECT public.try($$INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES (tenancy.current_tenant_id(), tenancy.current_user_id(), 'owner')$$) AS dave_promotes_himself;
SELECT count(*) AS credentials_dave_sees FROM tenancy.integration_credentials;
ROLLBACK;
BEGIN;
SET LOCAL ROLE service_role;
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001', as_user => '00000000-0000-4000-8000-0000000000a5') AS erin;
SET LOCAL ROLE authenticated;
SELECT count(*) AS projects_erin_reads FROM tenancy.projects;
WITH u AS (UPDATE tenancy.projects SET status = 'cancelled' RETURNING 1) SELECT count(*) AS projects_erin_changed FROM u;
ROLLBACK;

\echo
\echo '=== 7. anon sees nothing; service_role sees everything ==='
BEGIN; SET LOCAL ROLE anon; SELECT public.try('SELECT count(*) FROM tenancy.projects') AS anon_reads_projects; ROLLBACK;
BEGIN; SET LOCAL ROLE service_role; SELECT count(*) AS projects_service_role_sees FROM tenancy.projects; ROLLBACK;

\c - postgres
\echo
\echo '=== 8. updated_at is kept by a Rust trigger (moddatetime-style, C calling convention) ==='
SELECT name, updated_at FROM tenancy.projects WHERE name = 'Brand audit';
SELECT pg_sleep(0.01);
UPDATE tenancy.projects SET status = 'active', updated_at = '2000-01-01' WHERE name = 'Brand audit';
SELECT name, status, updated_at, updated_at > created_at AS moved FROM tenancy.projects WHERE name = 'Brand audit';

\echo
\echo '=== 9. Your own tables join the model: enable_tenant_isolation + manage_updated_at ==='
CREATE TABLE public.notes (
    tenant_id  uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    id         uuid NOT NULL DEFAULT gen_random_uuid(),
    body       text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
SELECT tenancy.enable_tenant_isolation('public.notes');
SELECT tenancy.manage_updated_at('public.notes');
INSERT INTO public.notes (tenant_id, body) VALUES
    ('a0000000-0000-4000-8000-000000000001', 'acme: renew the Slack token'),
    ('b0000000-0000-4000-8000-000000000002', 'globex: quarterly review');
SELECT policyname, cmd, roles::text, qual FROM pg_policies WHERE tablename = 'notes' ORDER BY policyname;
\c - authenticator
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000b4", "tenant_id": "b0000000-0000-4000-8000-000000000002"}', true) IS NOT NULL AS ivan_of_globex;
SELECT tenancy.pre_request();
SELECT body FROM public.notes;
COMMIT;

\c - postgres
\echo
\echo '=== 10. Credentials are encrypted by the database (root keyring, per-tenant data keys, AES-256-GCM) ==='
SELECT tenancy.health() ->> 'active_root_key' AS active_root_key;
\c - authenticator
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000a2", "tenant_id": "a0000000-0000-4000-8000-000000000001"}', true) IS NOT NULL AS bob_of_acme;
SELECT tenancy.pre_request();
-- Applications pass secrets as bind parameters ($1); literals here only for the walkthrough.
SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'oauth2_tokens',
         '{"access_token": "xoxb-demo-secret"}', 'xoxe-demo-refresh', now() + interval '1 hour', '{chat:write}') AS credential_id \gset
SELECT tenancy.read_credential(:'credential_id') -> 'data' AS decrypted_by_bob;
\echo '--- The ciphertexts are in tenancy_private, no application role''s to read (the vault''s functions are the door):'
SELECT public.try(format('SELECT encrypted_data FROM tenancy_private.credential_secrets WHERE credential_id = %L', :'credential_id')) AS bob_reads_the_ciphertext;
COMMIT;
\c - postgres
\echo '--- What the table holds, as the superuser sees it:'
SELECT encode(substr(encrypted_data, 1, 24), 'hex') || '...' AS what_the_table_holds,
       position(convert_to('xoxb', 'UTF8') IN encrypted_data) AS plaintext_found_at
FROM tenancy_private.credential_secrets WHERE credential_id = :'credential_id';
\c - authenticator
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000a4", "tenant_id": "a0000000-0000-4000-8000-000000000001"}', true) IS NOT NULL AS dave_of_acme;
SELECT tenancy.pre_request();
SELECT public.try(format('SELECT tenancy.read_credential(%L)', :'credential_id')) AS dave_reads_it;
ROLLBACK;
\c - postgres
BEGIN;
-- A ciphertext copied onto another row does not decrypt: it is bound to its tenant, row and column.
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001');
SELECT tenancy.store_credential('a1000000-0000-4000-8000-000000000101', 'bearer', '{"token": "other"}') AS other_id \gset
UPDATE tenancy_private.credential_secrets SET encrypted_data = (SELECT encrypted_data FROM tenancy_private.credential_secrets WHERE credential_id = :'credential_id')
WHERE credential_id = :'other_id';
SELECT public.try(format('SELECT tenancy.read_credential(%L)', :'other_id')) AS copied_ciphertext;
ROLLBACK;

\echo
\echo '=== 11. Key rotation: a new data key version for acme, credentials re-encrypted, the old version destroyed ==='
SELECT * FROM tenancy.rotate_tenant_key('a0000000-0000-4000-8000-000000000001');
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001');
SELECT tenancy.read_credential(:'credential_id') -> 'data' AS still_decrypts;
COMMIT;
-- Root key rotation: add a line to the keyring, mark it active, restart, then (superuser):
SELECT * FROM tenancy.rotate_root_key();
SELECT * FROM tenancy.root_key_usage();

\echo
\echo '=== 12. API keys: issued once, stored as a keyed hash, turned into a tenant context by the database ==='
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001', as_user => '00000000-0000-4000-8000-0000000000a1');
SELECT tenancy.create_api_key('demo backend', ARRAY['projects:read']) AS api_key \gset
COMMIT;
SELECT left(:'api_key', 30) || '...' AS api_key_shown_once, length(:'api_key') AS characters;
\c - authenticator
BEGIN;
SET LOCAL ROLE authenticated;
-- The application passes the key as a bind parameter; one call, and RLS applies:
SELECT tenancy.authenticate(:'api_key') AS tenant;
SELECT tenancy.current_role(), tenancy.has_scope('projects:read') AS may_read, tenancy.has_scope('projects:write') AS may_write;
SELECT count(*) AS acme_projects_seen, count(*) FILTER (WHERE tenant_id <> tenancy.current_tenant_id()) AS other_tenants_rows
FROM tenancy.projects;
SELECT count(*) AS api_keys_it_sees FROM tenancy.api_keys;
SELECT public.try('SELECT tenancy.create_api_key(''escalate'')') AS it_makes_a_key;
COMMIT;
BEGIN;
SET LOCAL ROLE authenticated;
SELECT tenancy.current_tenant_id() AS after_commit;
SELECT public.try(format('SELECT tenancy.verify_api_key(%L)', left(:'api_key', 100) || 'x')) AS typo;
SELECT public.try($$SELECT tenancy.verify_api_key(repeat('x', 10240))$$) AS garbage;
COMMIT;
\c - postgres
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001');
SELECT tenancy.revoke_api_key(key_id) AS revoked FROM tenancy.verify_api_key(:'api_key');
COMMIT;
SELECT public.try(format('SELECT tenancy.verify_api_key(%L)', :'api_key')) AS after_revocation;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001');
SELECT name, prefix, scopes, status, last_used_at IS NOT NULL AS used FROM tenancy.list_api_keys();
COMMIT;

\echo
\echo '=== 13. Request logs: one door in, secrets redacted before anything is stored ==='
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001', as_user => '00000000-0000-4000-8000-0000000000a4');
SELECT a.id AS action_id, a.integration_id FROM tenancy.actions a WHERE a.tenant_id = tenancy.current_tenant_id() LIMIT 1 \gset
SELECT tenancy.log_request(:'integration_id', :'action_id',
    '{"method": "POST", "url": "https://slack.com/api/chat.postMessage?token=xoxb-42-secret&channel=C1",
      "headers": {"Authorization": "Bearer xoxb-42-secret", "Content-Type": "application/json"},
      "body": {"channel": "C1", "text": "hi", "auth": {"client_secret": "shh", "password": "hunter2"}}}',
    '{"status": 200, "headers": {"Set-Cookie": "sid=abc"}, "body": {"ok": true, "note": "sent with Bearer xoxb-42-secret"}}',
    status_code => 200, latency_ms => 87) AS log_id \gset
SELECT jsonb_pretty(request_summary) AS stored_request, jsonb_pretty(response_summary) AS stored_response
FROM tenancy.request_logs WHERE id = :'log_id';
SET LOCAL ROLE authenticated;
SELECT public.try('UPDATE tenancy.request_logs SET status_code = 500') AS member_updates_a_log;
COMMIT;
-- Daily partitions, created ahead; old days dropped (run it from pg_cron):
SELECT jsonb_pretty(tenancy.maintain_request_logs('30 days', premake => 2)) AS maintenance;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001', as_user => '00000000-0000-4000-8000-0000000000a4');
SELECT requests, errors, error_rate, p50_ms, p95_ms FROM tenancy.request_stats(now() - interval '1 day');
COMMIT;

\echo
\echo '=== 14. Errors say what is wrong, with a SQLSTATE ==='
SELECT public.try($$SELECT tenancy.set_tenant(NULL)$$) AS null_tenant;
SELECT public.try($$SELECT tenancy.set_tenant('not-a-uuid')$$) AS bad_uuid;
SELECT public.try($$INSERT INTO tenancy.tenants (slug, name) VALUES ('Not A Slug!', 'x')$$) AS bad_slug;
SELECT public.try($$UPDATE tenancy.jobs SET progress = 150$$) AS progress_over_100;
SELECT public.try($$SELECT tenancy.manage_updated_at('public.notes', 'body')$$) AS wrong_column_type;

\echo
\echo '=== 15. Verified tokens: with tenancy.jwt_secret, pre_request checks the JWT signature itself ==='
-- Without the secret (steps 4-7), pre_request trusts request.jwt.claims, as PostgREST verified
-- them; but any role with SQL access could write that setting.  With the secret set (superuser:
-- postgresql.conf or ALTER SYSTEM; never ALTER DATABASE/ROLE ... SET, which every role can read),
-- only a signed token counts.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
SET tenancy.jwt_secret = 'demo-jwt-secret-at-least-32-bytes-long-0123';
CREATE FUNCTION pg_temp.jwt(payload jsonb, secret text) RETURNS text LANGUAGE sql AS $$
    SELECT body || '.' || translate(rtrim(encode(hmac(body, secret, 'sha256'), 'base64'), '='), E'+/\n', '-_')
    FROM (SELECT translate(rtrim(encode(convert_to('{"alg":"HS256","typ":"JWT"}', 'UTF8'), 'base64'), '='), E'+/\n', '-_') || '.' ||
                 translate(rtrim(encode(convert_to(payload::text, 'UTF8'), 'base64'), '='), E'+/\n', '-_') AS body) b
$$;
SELECT pg_temp.jwt(jsonb_build_object('sub', '00000000-0000-4000-8000-0000000000a2', 'tenant_id', 'a0000000-0000-4000-8000-000000000001',
                                      'role', 'authenticated', 'exp', extract(epoch FROM now() + interval '1 hour')::bigint),
                   'demo-jwt-secret-at-least-32-bytes-long-0123') AS bob_token \gset
BEGIN;
SET LOCAL ROLE authenticated;
\echo '--- A session writes forged claims (Frank, globex owner) and no token: it gets no context at all'
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000b1", "tenant_id": "b0000000-0000-4000-8000-000000000002"}', true) IS NOT NULL AS forged;
SELECT tenancy.pre_request();
SELECT tenancy.current_tenant_id() AS tenant, tenancy.current_role() AS role, count(*) AS globex_clients_visible FROM tenancy.clients;
\echo '--- Bob''s real token, in request.headers as PostgREST passes it: his context (the forged claims are ignored)'
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' || :'bob_token')::text, true) IS NOT NULL AS headers_set;
SELECT tenancy.pre_request();
SELECT tenancy.current_tenant_id() AS tenant, tenancy.current_user_id() AS user_id, tenancy.current_role() AS role;
\echo '--- The same claims under a guessed secret:'
SELECT set_config('request.headers', json_build_object('authorization', 'Bearer ' ||
       split_part(:'bob_token', '.', 1) || '.' || split_part(:'bob_token', '.', 2) || '.' || 'c2lnbmVkLXdpdGgtYS1ndWVzcw')::text, true) IS NOT NULL AS headers_set;
SELECT public.try($$SELECT tenancy.pre_request()$$) AS guessed_secret;
ROLLBACK;
\echo '--- Supabase signs with ES256 now: the setting takes its JWKS too (a secret, a JWK or a JWKS, as'
\echo '--- PostgREST''s jwt-secret).  Each key fixes its algorithm; a superuser checks a value before setting it:'
SELECT position, kid, kty, alg, bits, used, note FROM tenancy.jwt_keys($${"keys": [
  {"kty": "EC", "kid": "ec-1", "use": "sig", "crv": "P-256",
   "x": "m6uyG-8v_gyjooA7MH-cbKfHUUkaNRVQcFRt8cjbM4Y", "y": "lt7GnTvJk7t_iCk8cL4mzBwyzrC01l3Db91RHOf4P9w"},
  {"kty": "oct", "kid": "legacy", "k": "ZGVtby1qd3Qtc2VjcmV0LWF0LWxlYXN0LTMyLWJ5dGVzLWxvbmctMDEyMw"},
  {"kty": "RSA", "kid": "enc-1", "use": "enc", "n": "AQAB", "e": "AQAB"}]}$$);
RESET tenancy.jwt_secret;

\echo
\echo '=== 16. What RLS does not hide: an index that does not lead with tenant_id ==='
\echo '--- An index on notes(body) alone: enable_tenant_isolation warns, index_exposures() lists it'
CREATE INDEX notes_body_idx ON public.notes (body);
SELECT tenancy.enable_tenant_isolation('public.notes');
SELECT * FROM tenancy.index_exposures();
\echo '--- Ivan (globex) asks for acme''s note by its text, index scans forced: no row, but the plan counts it'
\c - authenticator
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000b4", "tenant_id": "b0000000-0000-4000-8000-000000000002"}', true) IS NOT NULL AS ivan_of_globex;
SELECT tenancy.pre_request();
SET LOCAL enable_seqscan = off;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM public.notes WHERE body = 'acme: renew the Slack token';
ROLLBACK;
\c - postgres
\echo '--- With tenant_id first, the scan never leaves globex: nothing to count'
DROP INDEX public.notes_body_idx;
CREATE INDEX notes_tenant_body_idx ON public.notes (tenant_id, body);
\c - authenticator
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000b4", "tenant_id": "b0000000-0000-4000-8000-000000000002"}', true) IS NOT NULL AS ivan_of_globex;
SELECT tenancy.pre_request();
SET LOCAL enable_seqscan = off;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM public.notes WHERE body = 'acme: renew the Slack token';
ROLLBACK;
\c - postgres

\echo
\echo '=== 17. A member with raw SQL (docs/security.md): one context per statement, no blocking locks, one door ==='
\c - authenticator
BEGIN;
SET LOCAL ROLE authenticated;
\echo '--- Alice is a plain member of globex and the owner of acme.  In globex she opens a cursor over api_keys'
\echo '--- (owner-only: she sees none) and reads it; switching to acme while it is open would let the cursor'
\echo '--- finish with acme''s owner role and globex''s tenant, so the switch is refused:'
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000a1", "tenant_id": "b0000000-0000-4000-8000-000000000002"}', true) IS NOT NULL AS alice_in_globex;
SELECT tenancy.pre_request();
DECLARE keys CURSOR FOR SELECT name FROM tenancy.api_keys;
FETCH 1 FROM keys;
SELECT public.try($$SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001')$$) AS switch_under_an_open_cursor;
CLOSE keys;
SELECT public.try($$SELECT tenancy.set_tenant('a0000000-0000-4000-8000-000000000001')$$) AS switch_after_close;
\echo '--- Locks that would make every tenant wait are refused before they are taken:'
SELECT public.try($$LOCK tenancy.api_keys IN ACCESS EXCLUSIVE MODE$$) AS lock_api_keys;
SELECT public.try($$CREATE RULE r AS ON INSERT TO tenancy.projects DO INSTEAD NOTHING$$) AS rule_on_projects;
SELECT public.try($$CREATE TEMP TABLE fk (t uuid, p uuid, FOREIGN KEY (t, p) REFERENCES tenancy.projects (tenant_id, id))$$) AS temp_foreign_key;
\echo '--- One door: no direct row into request_logs (no redaction, any date), memberships only through their functions:'
SELECT public.try($$INSERT INTO tenancy.request_logs (tenant_id, integration_id, action_id, request_summary, created_at)
                    SELECT tenant_id, integration_id, id, '{"authorization": "Bearer abcdefghijkl"}', '2100-01-01' FROM tenancy.actions LIMIT 1$$) AS direct_log_row;
SELECT public.try($$SELECT tenancy.remove_member('00000000-0000-4000-8000-0000000000a1')$$) AS last_owner_leaves;
ROLLBACK;
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000a2", "tenant_id": "a0000000-0000-4000-8000-000000000001"}', true) IS NOT NULL AS bob_admin_of_acme;
SELECT tenancy.pre_request();
SELECT public.try($$SELECT tenancy.set_member_role('00000000-0000-4000-8000-0000000000a2', 'owner')$$) AS admin_promotes_himself;
SELECT public.try($$SELECT tenancy.remove_member('00000000-0000-4000-8000-0000000000a1')$$) AS admin_removes_the_owner;
SELECT tenancy.add_member('00000000-0000-4000-8000-0000000000b4', 'client') AS admin_adds_a_client;
ROLLBACK;
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000a4", "tenant_id": "a0000000-0000-4000-8000-000000000001"}', true) IS NOT NULL AS dave_member_of_acme;
SELECT tenancy.pre_request();
WITH u AS (UPDATE tenancy.actions SET endpoint_template = 'https://evil.test/collect' RETURNING 1)
SELECT count(*) AS actions_dave_redirected FROM u;
SELECT public.try($$UPDATE tenancy.subscriptions SET tier = 'enterprise'$$) AS member_upgrades_the_plan;
ROLLBACK;
\c - postgres
\echo '--- Bounded work: 4 MB built to make a naive scanner quadratic (0.2.0 took 27 s for 160 kB of it), redacted'
\echo '--- in one pass with the cap raised to 16 MB; the time doubles with the input, and statement_timeout stops it'
SET tenancy.log_summary_max_bytes = '16MB';
\timing on
SELECT length(tenancy.redact(jsonb_build_object('body', repeat('-eyJ ', 400000)))::text) AS redacted_bytes_2mb;
SELECT length(tenancy.redact(jsonb_build_object('body', repeat('-eyJ ', 800000)))::text) AS redacted_bytes_4mb;
\timing off
SET statement_timeout = '10ms';
DO $$
BEGIN
    PERFORM tenancy.redact(jsonb_build_object('body', repeat('-eyJ ', 800000)));
EXCEPTION WHEN query_canceled THEN
    RAISE NOTICE 'cancelled by statement_timeout (10 ms) after % ms',
        round(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000);
END
$$;
RESET statement_timeout;
RESET tenancy.log_summary_max_bytes;

\echo
\echo '=== 18. Actions (docs/actions.md): inputs checked against their JSON Schema, field mappings applied in the database ==='
\c - authenticator
BEGIN;
SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-0000000000a4", "tenant_id": "a0000000-0000-4000-8000-000000000001"}', true) IS NOT NULL AS dave_member_of_acme;
SELECT tenancy.pre_request();
\echo '--- "Send message" requires channel and text (strings); every error with where it is, never the value:'
SELECT jsonb_pretty(tenancy.validate_action_input('a1000001-0000-4000-8000-000000000201', '{"channel": 5}')) AS errors;
SELECT public.try($$SELECT tenancy.check_action_input('a1000001-0000-4000-8000-000000000201', '{"channel": "C1"}')$$) AS check_input;
\echo '--- Its input mappings: $.message -> $.text, $.room -> $.channel (trimmed, lower case):'
SELECT tenancy.apply_field_mappings('a1000001-0000-4000-8000-000000000201', 'input', '{"message": "Deploy done", "room": "  #Ops "}') AS mapped;
\echo '--- globex''s action is not found from acme; a mapping outside the path subset is refused when written:'
SELECT public.try($$SELECT tenancy.apply_field_mappings('b1000001-0000-4000-8000-000000000201', 'input', '{}')$$) AS other_tenant;
ROLLBACK;
\c - postgres
SELECT public.try($$INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, direction)
                    VALUES ('a0000000-0000-4000-8000-000000000001', 'a1000001-0000-4000-8000-000000000201', '$..user', '$.user', 'input')$$) AS bad_mapping;

\echo
\echo 'Done.  Every table has FORCE ROW LEVEL SECURITY:'
SELECT (tenancy.health() ->> 'rls_forced_everywhere')::boolean AS rls_forced_everywhere;
