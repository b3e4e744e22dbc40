-- Tenant API keys: create, verify, authenticate, scopes, rejections (each with its SQLSTATE and
-- never the key in the message), revoke, rotate, list, last use, the stored hash.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();

-- Outcome of a statement with its error message, to check that no key leaks.
CREATE FUNCTION pg_temp.error_text(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE m text; d text; h text; s text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN s || ': ' || m || coalesce(' / ' || nullif(d, ''), '') || coalesce(' / ' || nullif(h, ''), '');
END $$;

-- As the application's login role would: authenticated, then tenancy.authenticate(key), then the
-- statement; rolled back.
CREATE FUNCTION pg_temp.as_key(key text, stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE result text;
BEGIN
    BEGIN
        PERFORM tenancy.clear_context();
        SET LOCAL ROLE authenticated;
        PERFORM tenancy.authenticate(key);
        EXECUTE stmt INTO result;
        result := 'value:' || coalesce(result, 'NULL');
        RAISE SQLSTATE 'TT000';
    EXCEPTION
        WHEN SQLSTATE 'TT000' THEN NULL;
        WHEN OTHERS THEN result := 'error:' || SQLSTATE;
    END;
    RETURN result;
END $$;

-- Keys made by acme's owner (alice) and by the service for globex.
SELECT tenancy.set_tenant(:acme, :alice);
SELECT tenancy.create_api_key('ci', ARRAY['projects:read', 'jobs:write']) AS acme_key \gset
SELECT tenancy.create_api_key('test env', environment => 'test') AS acme_test_key \gset
SELECT tenancy.clear_context();
SELECT tenancy.set_tenant(:globex);
SELECT tenancy.create_api_key('globex backend', ARRAY['*'], now() + interval '1 day') AS globex_key \gset
SELECT tenancy.clear_context();

SELECT matches((:'acme_key')::text, '^tk_live_[0-9A-Za-z]{93}$', 'a live key: tk_live_ and 93 base62 characters');
SELECT matches((:'acme_test_key')::text, '^tk_test_[0-9A-Za-z]{93}$', 'a test key: tk_test_');
SELECT is((SELECT count(*) FROM tenancy_private.api_key_hashes WHERE key_hash = sha256(convert_to((:'acme_key')::text, 'UTF8'))), 0::bigint,
          'the stored hash is not a plain SHA-256 of the key');
SELECT is((SELECT count(*) FROM tenancy.api_keys k JOIN tenancy_private.api_key_hashes h ON (h.tenant_id, h.key_id) = (k.tenant_id, k.id)
            WHERE position(convert_to(substr((:'acme_key')::text, 53, 43), 'UTF8') IN h.key_hash) > 0
               OR k.prefix LIKE '%' || substr((:'acme_key')::text, 53, 10) || '%'), 0::bigint,
          'no part of the secret is stored');
SELECT is((SELECT created_by FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'ci'), :alice::uuid, 'created_by is the owner');
SELECT is((SELECT count(*) FROM tenancy_private.peppers), 1::bigint, 'one pepper, made on first use');
SELECT is((SELECT count(*) FROM tenancy.api_keys k
            WHERE NOT EXISTS (SELECT FROM tenancy_private.api_key_hashes h WHERE (h.tenant_id, h.key_id) = (k.tenant_id, k.id))),
          0::bigint, 'every key has its hash in tenancy_private');

-- verify_api_key: tenant, key id, scopes.
SELECT results_eq(format('SELECT tenant_id, scopes FROM tenancy.verify_api_key(%L)', (:'acme_key')::text),
                  format($$VALUES (%L::uuid, '{jobs:write,projects:read}'::text[])$$, :acme), 'verify gives the tenant and the (sorted) scopes');
SELECT is((SELECT key_id FROM tenancy.verify_api_key((:'acme_key')::text)), (SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'ci'),
          'and the key id');

-- authenticate: the transaction's context; RLS from the next statement on.
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT tenancy.current_tenant_id()'), 'value:' || :acme, 'authenticate sets the tenant');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT tenancy.current_role()'), 'value:api_key', 'with role api_key');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT tenancy.current_user_id()'), 'value:NULL', 'and no user');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT tenancy.current_api_key_id()'),
          'value:' || (SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'ci'), 'and the key id');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT count(*) FROM tenancy.projects WHERE tenant_id <> tenancy.current_tenant_id()'), 'value:0',
          'an API key sees no other tenant''s rows');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT count(*) FROM tenancy.projects'),
          'value:' || (SELECT count(*) FROM tenancy.projects WHERE tenant_id = :acme), 'and all of its own tenant''s');
SELECT is(pg_temp.as_key((:'acme_key')::text, format('SELECT count(*) FROM tenancy.projects WHERE tenant_id = %L', :globex)), 'value:0',
          'naming the other tenant does not help');
SELECT is(pg_temp.as_key((:'acme_key')::text, $$WITH i AS (INSERT INTO tenancy.jobs (tenant_id, job_type) VALUES (tenancy.current_tenant_id(), 'export') RETURNING 1) SELECT count(*) FROM i$$),
          'value:1', 'it writes its own tenant''s rows');
SELECT is(pg_temp.as_key((:'acme_key')::text, format($$WITH i AS (INSERT INTO tenancy.jobs (tenant_id, job_type) VALUES (%L, 'export') RETURNING 1) SELECT count(*) FROM i$$, :globex)),
          'error:42501', 'not another tenant''s');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT count(*) FROM tenancy.api_keys'), 'value:0', 'an API key cannot see API keys');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT count(*) FROM tenancy.integration_credentials'), 'value:0', 'nor credentials');
SELECT is(pg_temp.as_key((:'acme_key')::text, format('SELECT tenancy.read_credential(%L)', gen_random_uuid())), 'error:42501', 'nor decrypt them');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT tenancy.create_api_key(''more'')'), 'error:42501', 'nor make keys');
SELECT is(pg_temp.as_key((:'acme_key')::text, format('SELECT tenancy.set_tenant(%L)', :globex)), 'error:28000', 'nor switch tenants');
SELECT is(pg_temp.as_key((:'acme_key')::text, format('SELECT tenancy.set_tenant(%L, %L)', :globex, :frank)), 'error:42501', 'nor act as a user');
SELECT is(pg_temp.as_key((:'acme_key')::text, $$SELECT set_config('tenancy.context', 'b0000000-0000-4000-8000-000000000002,,owner', true)$$),
          'error:42501', 'nor forge the context');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT tenancy.has_scope(''projects:read'')'), 'value:true', 'has_scope: a scope the key has');
SELECT is(pg_temp.as_key((:'acme_key')::text, 'SELECT tenancy.has_scope(''projects:write'')'), 'value:false', 'has_scope: one it has not');
SELECT is(pg_temp.as_key((:'globex_key')::text, 'SELECT tenancy.has_scope(''anything'')'), 'value:true', 'the * scope has every scope');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT tenancy.has_scope(''projects:read'')'), 'value:false',
          'without an API key, has_scope is false');
SELECT is(pg_temp.probe('anon', NULL, NULL, format('SELECT tenancy.authenticate(%L)', (:'acme_key')::text)), 'error:42501', 'anon may not authenticate');

-- The context ends with the transaction.
SAVEPOINT s;
SELECT tenancy.authenticate((:'acme_key')::text) IS NOT NULL AS authenticated_in_savepoint;
ROLLBACK TO SAVEPOINT s;
SELECT is(tenancy.current_tenant_id(), NULL, 'a rolled-back savepoint takes the API key context with it');

-- A key whose hash is gone is gone, also for a context it gave (at the next statement).
SAVEPOINT s;
SELECT tenancy.authenticate((:'acme_key')::text) IS NOT NULL AS authenticated_in_savepoint;
SELECT is(tenancy.current_tenant_id(), :acme::uuid, 'an API key context');
DELETE FROM tenancy_private.api_key_hashes WHERE key_id = tenancy.current_api_key_id();
SELECT is(tenancy.current_tenant_id(), NULL, 'its hash deleted: the context is gone at the next statement');
ROLLBACK TO SAVEPOINT s;

-- Rejections: the SQLSTATE, and never the key (or any of it) in the message.
CREATE TEMP TABLE rejections (what text, stmt text, code text, message text);
INSERT INTO rejections VALUES
    ('NULL', 'SELECT tenancy.verify_api_key(NULL)', '28000', 'no API key given'),
    ('empty', $$SELECT tenancy.verify_api_key('')$$, '28000', 'no API key given'),
    ('10 kB of garbage', $$SELECT tenancy.verify_api_key(repeat('x', 10240))$$, '28000', 'malformed API key'),
    ('wrong prefix', format('SELECT tenancy.verify_api_key(%L)', 'tk_prod_' || substr((:'acme_key')::text, 9)), '28000', 'malformed API key'),
    ('wrong checksum', format('SELECT tenancy.verify_api_key(%L)', left((:'acme_key')::text, 95) || translate(right((:'acme_key')::text, 6), '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', '123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0')),
     '28000', 'malformed API key'),
    ('a typo in the secret', format('SELECT tenancy.verify_api_key(%L)', overlay((:'acme_key')::text placing CASE WHEN substr((:'acme_key')::text, 60, 1) = 'a' THEN 'b' ELSE 'a' END from 60 for 1)),
     '28000', 'malformed API key'),
    ('non-ASCII', format('SELECT tenancy.verify_api_key(%L)', 'tk_live_' || repeat('é', 93)), '28000', 'malformed API key'),
    ('a NUL-free control character', format('SELECT tenancy.verify_api_key(%L)', overlay((:'acme_key')::text placing E'\x01' from 30 for 1)), '28000', 'malformed API key'),
    ('the test key as live', format('SELECT tenancy.verify_api_key(%L)', replace((:'acme_test_key')::text, 'tk_test_', 'tk_live_')), '28000', 'malformed API key');
SELECT is(r.outcome, r.code || ': ' || r.message, 'rejected: ' || r.what)
FROM (SELECT what, code, message, split_part(pg_temp.error_text(stmt), ' / ', 1) AS outcome FROM rejections) r;
SELECT is((SELECT count(*) FROM rejections r
           WHERE position(substr((:'acme_key')::text, 9, 40) IN pg_temp.error_text(r.stmt)) > 0
              OR position(substr((:'acme_key')::text, 53, 20) IN pg_temp.error_text(r.stmt)) > 0), 0::bigint,
          'no rejection message, detail or hint contains any part of a key');

-- The checksum, computed in SQL the documented way (what a secret scanner does offline): the first
-- 4 bytes of SHA-256 over 'pg_tenancy/api-key-checksum/v1', a NUL byte and the key's first 95
-- characters, as 6 base62 digits.
CREATE FUNCTION pg_temp.with_checksum(body text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    n bigint := ('x' || encode(substr(sha256(convert_to('pg_tenancy/api-key-checksum/v1', 'UTF8') || '\x00'::bytea || convert_to(body, 'UTF8')), 1, 4), 'hex'))::bit(32)::bigint;
    digits text := '';
BEGIN
    FOR i IN 1..6 LOOP
        digits := substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz', (n % 62)::int + 1, 1) || digits;
        n := n / 62;
    END LOOP;
    RETURN body || digits;
END $$;
SELECT is(pg_temp.with_checksum(left((:'acme_key')::text, 95)), (:'acme_key')::text, 'the checksum can be checked offline, as documented');
-- Well-formed keys (right checksum) that the database never issued.
SELECT is(split_part(pg_temp.error_text(format('SELECT tenancy.verify_api_key(%L)',
              pg_temp.with_checksum(left((:'acme_key')::text, 30) || '0000000000000000000001' || substr((:'acme_key')::text, 53, 43)))), ' / ', 1),
          '28P01: invalid API key', 'rejected: an unknown key id');
SELECT is(split_part(pg_temp.error_text(format('SELECT tenancy.verify_api_key(%L)',
              pg_temp.with_checksum(left((:'acme_key')::text, 52) || repeat('0', 43)))), ' / ', 1),
          '28P01: invalid API key', 'rejected: a wrong secret');
SELECT is(split_part(pg_temp.error_text(format('SELECT tenancy.verify_api_key(%L)',
              pg_temp.with_checksum('tk_live_' || substr((:'globex_key')::text, 9, 22) || substr((:'acme_key')::text, 31, 65)))), ' / ', 1),
          '28P01: invalid API key', 'rejected: a key moved to another tenant');
SELECT is(split_part(pg_temp.error_text(format('SELECT tenancy.verify_api_key(%L)',
              pg_temp.with_checksum('tk_live_' || 'zzzzzzzzzzzzzzzzzzzzzz' || substr((:'acme_key')::text, 31, 65)))), ' / ', 1),
          '28000: malformed API key', 'rejected: an id part that is not a uuid');

-- Revocation: at once, for good.
SELECT tenancy.set_tenant(:acme, :alice);
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format('SELECT tenancy.revoke_api_key(%L)', (SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'ci'))),
          'error:42501', 'a member may not revoke keys');
SELECT is(pg_temp.probe('authenticated', :globex, :frank, format('SELECT tenancy.revoke_api_key(%L)', (SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'ci'))),
          'error:P0002', 'another tenant''s owner: not found');
SELECT is(tenancy.revoke_api_key((SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'test env')), true, 'the owner revokes a key');
SELECT is(tenancy.revoke_api_key((SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'test env')), false, 'revoking twice: false');
SELECT is(split_part(pg_temp.error_text(format('SELECT tenancy.verify_api_key(%L)', (:'acme_test_key')::text)), ' / ', 1), '28P01: API key has been revoked',
          'a revoked key is refused');
SELECT is(pg_temp.as_key((:'acme_test_key')::text, 'SELECT 1'), 'error:28P01', 'and cannot authenticate');

-- Rotation: a new key; the old one works until the grace period ends.
SELECT tenancy.rotate_api_key((SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'ci'), interval '1 hour') AS rotated_key \gset
SELECT isnt((:'rotated_key')::text, (:'acme_key')::text, 'rotation gives a new key');
SELECT is((SELECT scopes FROM tenancy.verify_api_key((:'rotated_key')::text)), '{jobs:write,projects:read}'::text[], 'with the same scopes');
SELECT lives_ok(format('SELECT tenancy.verify_api_key(%L)', (:'acme_key')::text), 'the old key still works during the grace period');
SELECT ok((SELECT expires_at BETWEEN now() + interval '59 minutes' AND now() + interval '61 minutes'
           FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'ci' AND replaced_by IS NOT NULL), 'and expires when it ends');
SELECT tenancy.rotate_api_key((SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'ci' AND replaced_by IS NULL), interval '0') AS rotated_twice \gset
SELECT is(split_part(pg_temp.error_text(format('SELECT tenancy.verify_api_key(%L)', (:'rotated_key')::text)), ' / ', 1), '28P01: API key has expired',
          'a grace of 0 ends the old key at once');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.rotate_api_key(%L)', (SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'test env'))),
               '^55000: ', 'a revoked key cannot be rotated');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.rotate_api_key(%L, %L)', (SELECT id FROM tenancy.api_keys WHERE tenant_id = :acme AND name = 'ci' AND replaced_by IS NULL), '-1 hour')),
               '^22023: ', 'a negative grace is refused');

-- Expiry.
UPDATE tenancy.api_keys SET expires_at = now() - interval '1 second' WHERE tenant_id = :globex;
SELECT is(split_part(pg_temp.error_text(format('SELECT tenancy.verify_api_key(%L)', (:'globex_key')::text)), ' / ', 1), '28P01: API key has expired', 'an expired key is refused');
UPDATE tenancy.api_keys SET expires_at = NULL WHERE tenant_id = :globex;

-- A suspended tenant's keys are refused; active again, they work.
UPDATE tenancy.tenants SET status = 'suspended' WHERE id = :globex;
SELECT is(split_part(pg_temp.error_text(format('SELECT tenancy.verify_api_key(%L)', (:'globex_key')::text)), ' / ', 1), '28000: the API key''s tenant is suspended',
          'a suspended tenant''s key is refused');
UPDATE tenancy.tenants SET status = 'active' WHERE id = :globex;
SELECT lives_ok(format('SELECT tenancy.verify_api_key(%L)', (:'globex_key')::text), 'and works again once the tenant is active');

-- A stored hash moved to another key does not make that key valid.
UPDATE tenancy_private.api_key_hashes h SET key_hash = (SELECT key_hash FROM tenancy_private.api_key_hashes WHERE tenant_id = :globex LIMIT 1)
  FROM tenancy.api_keys k
 WHERE (k.tenant_id, k.id) = (h.tenant_id, h.key_id) AND k.tenant_id = :acme AND k.replaced_by IS NULL AND k.revoked_at IS NULL;
SELECT is(split_part(pg_temp.error_text(format('SELECT tenancy.verify_api_key(%L)', (:'rotated_twice')::text)), ' / ', 1), '28P01: invalid API key',
          'a copied hash does not verify another key');

-- Bad input to create_api_key.
SELECT matches(pg_temp.error_text('SELECT tenancy.create_api_key(NULL)'), '^22004: ', 'create: NULL name');
SELECT matches(pg_temp.error_text('SELECT tenancy.create_api_key('''')'), '^22023: ', 'create: empty name');
SELECT matches(pg_temp.error_text('SELECT tenancy.create_api_key(''x'', ARRAY[''has space''])'), '^22023: ', 'create: a scope with a space');
SELECT matches(pg_temp.error_text('SELECT tenancy.create_api_key(''x'', ARRAY[NULL])'), '^22023: ', 'create: a NULL scope');
SELECT matches(pg_temp.error_text('SELECT tenancy.create_api_key(''x'', expires_at => now() - interval ''1 day'')'), '^22023: ', 'create: expiry in the past');
SELECT matches(pg_temp.error_text('SELECT tenancy.create_api_key(''x'', environment => ''prod'')'), '^22023: ', 'create: unknown environment');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, 'SELECT tenancy.create_api_key(''x'')'), 'error:42501', 'create: a member may not');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SELECT length(tenancy.create_api_key(''x''))'), 'value:101', 'create: an admin may');
SELECT is(pg_temp.probe('authenticated', NULL, NULL, 'SELECT tenancy.create_api_key(''x'')'), 'error:42501', 'create: not without a tenant');

-- list_api_keys: never a hash; status and last use.
SELECT tenancy.set_tenant(:acme, :alice);
SELECT is((SELECT array_agg(status ORDER BY status) FROM tenancy.list_api_keys()), ARRAY['active', 'active', 'expired', 'revoked'],
          'list_api_keys: every key of the tenant with its status');
SELECT ok(NOT EXISTS (SELECT 1 FROM information_schema.routines r JOIN information_schema.parameters p USING (specific_schema, specific_name)
                      WHERE r.routine_schema = 'tenancy' AND r.routine_name = 'list_api_keys' AND p.parameter_name = 'key_hash'),
          'and no hash column');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, 'SELECT count(*) FROM tenancy.list_api_keys()'), 'error:42501', 'a member may not list keys');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT count(*) FROM tenancy.list_api_keys() WHERE last_used_at IS NOT NULL'), 'value:2',
          'last use is recorded (the two keys verified above)');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT key_hash FROM tenancy_private.api_key_hashes LIMIT 1'), 'error:42501', 'the owner cannot read hashes');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT key_hash FROM tenancy_private.api_key_hashes LIMIT 1'), 'error:42501', 'nor can service_role');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'UPDATE tenancy.api_keys SET revoked_at = NULL'), 'error:42501', 'nor un-revoke a key');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'UPDATE tenancy.api_keys SET scopes = ''{*}'''), 'error:42501', 'nor widen its scopes');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'UPDATE tenancy.api_keys SET name = ''renamed'''), 'rows:4', 'but may rename keys');
SELECT is(pg_temp.probe('authenticated', :acme, :alice,
          'INSERT INTO tenancy.api_keys (tenant_id, name, prefix) VALUES (tenancy.current_tenant_id(), ''x'', ''x'')'),
          'error:42501', 'nor insert keys directly');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT count(*) FROM tenancy_private.api_key_usage'), 'error:42501', 'usage is internal');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT count(*) FROM tenancy_private.peppers'), 'error:42501', 'the pepper is unreadable');

-- last_used_at across connections and in read-only transactions: pgrx-tests/tests/clients.rs.

SELECT * FROM finish();
ROLLBACK;
