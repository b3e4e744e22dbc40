-- Credential vault: round trips, access, tampering, moved ciphertexts, bad input, errors without secrets.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();

\set slack_a '''a1000000-0000-4000-8000-000000000101'''
\set slack_b '''b1000000-0000-4000-8000-000000000101'''

-- Outcome of a statement with its error message and detail, to check that no secret leaks.
CREATE FUNCTION pg_temp.error_text(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE m text; d text; s text;
BEGIN
    EXECUTE stmt;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
    RETURN s || ': ' || m || coalesce(' / ' || nullif(d, ''), '');
END $$;

-- Round trip of every credential type, as the service, in acme.
SELECT tenancy.set_tenant(:acme);
CREATE TEMP TABLE creds AS
SELECT t AS credential_type,
       tenancy.store_credential(:slack_a, t, jsonb_build_object('secret', 'S3cret-' || t, 'nested', jsonb_build_object('n', 1)),
                                'refresh-' || t, now() + interval '1 hour', ARRAY['chat:write']) AS id
FROM unnest(enum_range(NULL::tenancy.credential_type)::text[]) t;
SELECT is((SELECT count(*) FROM creds), 4::bigint, 'one credential of every type');
SELECT is((SELECT count(*) FROM creds c WHERE tenancy.read_credential(c.id) -> 'data' ->> 'secret' = 'S3cret-' || c.credential_type), 4::bigint,
          'every type decrypts to what was stored');
SELECT is((SELECT count(*) FROM creds c WHERE tenancy.read_credential(c.id) ->> 'refresh_token' = 'refresh-' || c.credential_type), 4::bigint,
          'refresh tokens too');
SELECT is(tenancy.read_credential((SELECT id FROM creds LIMIT 1)) -> 'scopes', '["chat:write"]'::jsonb, 'metadata comes along');
SELECT is((SELECT count(*) FROM tenancy_private.credential_secrets i JOIN creds c ON c.id = i.credential_id
           WHERE position(convert_to('S3cret', 'UTF8') IN i.encrypted_data) > 0
              OR position(convert_to('refresh-', 'UTF8') IN i.encrypted_refresh_token) > 0), 0::bigint,
          'no plaintext in the stored bytes');
SELECT is((SELECT get_byte(encrypted_data, 0) FROM tenancy_private.credential_secrets WHERE credential_id = (SELECT id FROM creds LIMIT 1)), 1,
          'ciphertexts are format version 1');
SELECT is(tenancy.read_credential(tenancy.store_credential(:slack_a, 'bearer', '{"t": "x"}')) ->> 'refresh_token', NULL,
          'no refresh token: NULL');
CREATE TEMP TABLE odd AS SELECT '{"big": 123456789012345678901234567890.000000000001, "e": "\u00e9\"\\", "nested": [[], {}, [null, true, -0.5e-3]], "": ""}'::jsonb AS v;
SELECT is(tenancy.read_credential(tenancy.store_credential(:slack_a, 'basic', (SELECT v FROM odd))) -> 'data', (SELECT v FROM odd),
          'data comes back exactly as jsonb holds it (numbers beyond double precision, escapes, empty keys)');
SELECT is((SELECT count(*) FROM tenancy_private.data_keys WHERE tenant_id = :acme), 1::bigint, 'one data key for the tenant, created on first use');
SELECT is((SELECT length(fingerprint) FROM tenancy_private.root_keys WHERE key_id = 'k1'), 16, 'the root key''s fingerprint is recorded');

-- Access.
\set cred '(SELECT id FROM creds LIMIT 1)'
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.read_credential(%L) -> ''data'' ->> ''secret''', :cred)),
          'value:S3cret-' || (SELECT credential_type FROM creds LIMIT 1), 'an admin of the tenant reads it');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format('SELECT tenancy.read_credential(%L)', :cred)), 'error:42501', 'a member does not');
SELECT is(pg_temp.probe('authenticated', :acme, :erin, format('SELECT tenancy.read_credential(%L)', :cred)), 'error:42501', 'a client does not');
SELECT is(pg_temp.probe('authenticated', :globex, :frank, format('SELECT tenancy.read_credential(%L)', :cred)), 'error:P0002',
          'another tenant''s owner is told "not found"');
SELECT is(pg_temp.probe('authenticated', NULL, NULL, format('SELECT tenancy.read_credential(%L)', :cred)), 'error:42501', 'no context, no credential');
SELECT is(pg_temp.probe('anon', NULL, NULL, format('SELECT tenancy.read_credential(%L)', :cred)), 'error:42501', 'anon may not call it');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format('SELECT tenancy.store_credential(%L, ''bearer'', ''{"t": 1}'')', :slack_a)),
          'error:42501', 'a member cannot store one');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.store_credential(%L, ''bearer'', ''{"t": 1}'') IS NOT NULL', :slack_a)),
          'value:true', 'an admin can');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.store_credential(%L, ''bearer'', ''{"t": 1}'')', :slack_b)),
          'error:23503', 'not for another tenant''s integration');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SELECT count(*) FROM tenancy_private.data_keys'), 'error:42501', 'data keys are unreadable');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT count(*) FROM tenancy_private.root_keys'), 'error:42501', 'even for service_role');

-- Tampering: every single-byte change of a stored ciphertext fails (one bit flipped per byte,
-- a different bit each time), and never yields plaintext.
CREATE FUNCTION pg_temp.flips(cred uuid) RETURNS text LANGUAGE plpgsql AS $$
DECLARE original bytea; n int; good int := 0; i int; res text;
BEGIN
    SELECT encrypted_data INTO original FROM tenancy_private.credential_secrets WHERE credential_id = cred;
    n := length(original);
    FOR i IN 0 .. n - 1 LOOP
        UPDATE tenancy_private.credential_secrets SET encrypted_data = set_byte(original, i, get_byte(original, i) # (1 << (i % 8)))
        WHERE credential_id = cred;
        res := pg_temp.error_text(format('SELECT tenancy.read_credential(%L)', cred));
        IF res = 'ok' OR res LIKE '%S3cret%' THEN good := good + 1; END IF;
    END LOOP;
    UPDATE tenancy_private.credential_secrets SET encrypted_data = original WHERE credential_id = cred;
    RETURN n || ' positions, ' || good || ' decrypted';
END $$;
SELECT matches(pg_temp.flips(:cred), '^[0-9]+ positions, 0 decrypted$', 'every flipped byte position is rejected');
SELECT lives_ok(format('SELECT tenancy.read_credential(%L)', :cred), 'and the restored ciphertext reads again');

-- Moved ciphertexts fail: to another row, to another field, to another tenant.
CREATE TEMP TABLE two AS SELECT id FROM creds ORDER BY id LIMIT 2;
UPDATE tenancy_private.credential_secrets SET encrypted_data = (SELECT encrypted_data FROM tenancy_private.credential_secrets WHERE credential_id = (SELECT min(id::text)::uuid FROM two))
WHERE credential_id = (SELECT max(id::text)::uuid FROM two);
SELECT matches(pg_temp.error_text(format('SELECT tenancy.read_credential(%L)', (SELECT max(id::text)::uuid FROM two))),
               '^XX001: .*belongs to another row', 'a ciphertext copied to another row does not decrypt');
UPDATE tenancy_private.credential_secrets SET encrypted_data = encrypted_refresh_token WHERE credential_id = (SELECT min(id::text)::uuid FROM two);
SELECT matches(pg_temp.error_text(format('SELECT tenancy.read_credential(%L)', (SELECT min(id::text)::uuid FROM two))),
               '^XX001: ', 'a ciphertext moved to another field does not decrypt');
SELECT tenancy.set_tenant(:globex);
SELECT tenancy.store_credential(:slack_b, 'bearer', '{"t": "globex"}') IS NOT NULL AS globex_has_a_key;
CREATE TEMP TABLE victim AS
SELECT i.id FROM tenancy.integration_credentials i WHERE i.tenant_id = :globex LIMIT 1;
UPDATE tenancy_private.credential_secrets SET encrypted_data = (SELECT encrypted_data FROM tenancy_private.credential_secrets WHERE credential_id = (SELECT id FROM creds ORDER BY id DESC LIMIT 1))
WHERE credential_id = (SELECT id FROM victim);
SELECT matches(pg_temp.error_text(format('SELECT tenancy.read_credential(%L)', (SELECT id FROM victim))),
               '^XX001: ', 'a ciphertext copied to another tenant does not decrypt');
SELECT ok(pg_temp.error_text(format('SELECT tenancy.read_credential(%L)', (SELECT id FROM victim))) !~ '(S3cret|refresh-|\\x01)',
          'and the error carries no plaintext and no ciphertext');

-- Bad input: a clear error, and never a ciphertext in the message or its DETAIL.
SELECT tenancy.set_tenant(:acme);
SELECT matches(pg_temp.error_text(format('SELECT tenancy.store_credential(NULL, ''bearer'', ''{"k": "S3cret"}'')')), '^22004: integration_id must not be NULL$', 'NULL integration');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.store_credential(%L, NULL, ''{"k": "S3cret"}'')', :slack_a)), '^22004: ', 'NULL type');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.store_credential(%L, ''bearer'', NULL)', :slack_a)), '^22004: ', 'NULL data');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.store_credential(%L, ''bearer'', ''{"k": "S3cret"}'', scopes => ARRAY[''read'', NULL])', :slack_a)),
               '^22004: an element of scopes must not be NULL$', 'a NULL scope (found by the fuzzer: it was an internal error)');
SELECT matches(pg_temp.error_text('SELECT tenancy.update_credential(gen_random_uuid(), clear_refresh_token => NULL)'),
               '^22004: clear_refresh_token must not be NULL$', 'NULL clear_refresh_token (found by the fuzzer: it was an internal error)');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.store_credential(%L, ''telepathy'', ''{"k": "S3cret"}'')', :slack_a)), '^22P02: ', 'unknown type');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.store_credential(%L, ''bearer'', ''"S3cret"'')', :slack_a)), '^22023: data must be a JSON object$', 'data not an object');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.store_credential(%L, ''bearer'', ''{"k": "S3cret"}'')', 'ffffffff-0000-4000-8000-000000000000')),
               '^23503: ', 'unknown integration');
SELECT ok(pg_temp.error_text(format('SELECT tenancy.store_credential(%L, ''bearer'', ''{"k": "S3cret"}'')', 'ffffffff-0000-4000-8000-000000000000')) !~ '(S3cret|\\\\x01)',
          'its message and detail carry no secret and no ciphertext');
SELECT matches(pg_temp.error_text('SELECT tenancy.read_credential(NULL)'), '^22004: ', 'read NULL');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.read_credential(%L)', 'ffffffff-0000-4000-8000-000000000000')), '^P0002: ', 'read unknown');

-- update_credential: new secrets re-encrypted in place, other fields kept.
CREATE TEMP TABLE upd AS SELECT id, (SELECT encrypted_data FROM tenancy_private.credential_secrets i WHERE i.credential_id = c.id) AS before
FROM creds c ORDER BY id DESC LIMIT 1;
SELECT lives_ok(format($$SELECT tenancy.update_credential(%L, data => '{"secret": "rotated"}', refresh_token => 'new-refresh', status => 'needs_reauth')$$,
                       (SELECT id FROM upd)), 'update_credential');
SELECT results_eq(format($$SELECT r -> 'data' ->> 'secret', r ->> 'refresh_token', r ->> 'status', r -> 'scopes' FROM tenancy.read_credential(%L) r$$, (SELECT id FROM upd)),
                  $$VALUES ('rotated'::text, 'new-refresh'::text, 'needs_reauth'::text, '["chat:write"]'::jsonb)$$,
                  'the new secrets decrypt, the scopes are kept');
SELECT isnt((SELECT encrypted_data FROM tenancy_private.credential_secrets WHERE credential_id = (SELECT id FROM upd)), (SELECT before FROM upd),
            'the ciphertext changed');
SELECT lives_ok(format('SELECT tenancy.update_credential(%L, clear_refresh_token => true)', (SELECT id FROM upd)), 'clearing the refresh token');
SELECT is(tenancy.read_credential((SELECT id FROM upd)) ->> 'refresh_token', NULL, 'is cleared');
SELECT is(tenancy.read_credential((SELECT id FROM upd)) -> 'data' ->> 'secret', 'rotated', 'and the data kept');
-- A credential whose secrets row is missing (only a superuser can make one) is not found, for an
-- update too: no success reported for a secret that went nowhere, and its metadata unchanged.
SAVEPOINT no_secrets;
DELETE FROM tenancy_private.credential_secrets WHERE credential_id = (SELECT id FROM upd);
SELECT matches(pg_temp.error_text(format($$SELECT tenancy.update_credential(%L, data => '{"secret": "lost"}', status => 'active')$$, (SELECT id FROM upd))),
               '^P0002: credential [0-9a-f-]+ not found$', 'update_credential: a credential without its secrets row is not found');
SELECT is((SELECT status::text FROM tenancy.integration_credentials WHERE id = (SELECT id FROM upd)), 'needs_reauth',
          'and its row is unchanged');
ROLLBACK TO SAVEPOINT no_secrets;
SELECT matches(pg_temp.error_text(format('SELECT tenancy.update_credential(%L, refresh_token => ''x'', clear_refresh_token => true)', (SELECT id FROM upd))),
               '^22023: ', 'refresh_token and clear_refresh_token together');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.update_credential(%L, status => ''lost'')', (SELECT id FROM upd))), '^22P02: ', 'unknown status');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.update_credential(%L)', 'ffffffff-0000-4000-8000-000000000000')), '^P0002: ', 'unknown credential');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format('SELECT tenancy.update_credential(%L, status => ''revoked'')', (SELECT id FROM upd))),
          'error:42501', 'a member cannot update');
SELECT is(pg_temp.probe('authenticated', :globex, :frank, format('SELECT tenancy.update_credential(%L, status => ''revoked'')', (SELECT id FROM upd))),
          'error:P0002', 'another tenant''s owner: not found');
SELECT tenancy.set_tenant(:acme);

-- The refresh worker's view.
SELECT tenancy.clear_context();
SELECT is((SELECT count(*) FROM tenancy.credentials_expiring('2 hours') WHERE id IN (SELECT id FROM creds)), 3::bigint,
          'credentials_expiring lists the active ones that expire soon');
SELECT ok(NOT EXISTS (SELECT 1 FROM tenancy.credentials_expiring('2 hours') WHERE id = (SELECT id FROM upd)),
          'but not one that needs re-authorization');
SELECT is((SELECT count(*) FROM tenancy.credentials_expiring('-1 hour')), 0::bigint, 'and nothing that does not');
SELECT is(pg_temp.probe('authenticated', :globex, :frank, 'SELECT count(*) FROM tenancy.credentials_expiring(''2 hours'') WHERE tenant_id <> tenancy.current_tenant_id()'),
          'value:0', 'a tenant''s owner sees only their own');

-- Tenant key rotation: a new data key version, every credential re-encrypted under it (in
-- batches, resumable), then the old versions destroyed; the plaintexts never change.
SELECT tenancy.set_tenant(:acme);
SELECT matches(pg_temp.error_text(format('SELECT * FROM tenancy.rotate_tenant_key(%L)', :acme)),
               '^XX001: credential [0-9a-f-]+ cannot be decrypted', 'rotation stops at a corrupted credential (the moved ciphertexts above)');
SELECT is((SELECT count(*) FROM tenancy_private.data_keys WHERE tenant_id = :acme), 1::bigint, 'and changes nothing');
DELETE FROM tenancy.integration_credentials WHERE id IN (SELECT id FROM two);
SELECT is((SELECT count(*) FROM tenancy_private.credential_secrets WHERE credential_id IN (SELECT id FROM two)), 0::bigint,
          'a deleted credential''s ciphertexts go with it');
CREATE TEMP TABLE plain_before AS
SELECT id, tenancy.read_credential(id) AS r FROM tenancy.integration_credentials WHERE tenant_id = :acme;
SELECT count(*) AS n FROM plain_before \gset
SELECT cmp_ok(:n, '>=', 3, 'acme has credentials to rotate');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SELECT tenancy.rotate_tenant_key(%L)', :acme)), 'error:42501',
          'a tenant''s owner may not rotate keys');
SELECT results_eq(format('SELECT key_version, reencrypted, remaining, retired_versions FROM tenancy.rotate_tenant_key(%L, 2)', :acme),
                  format('VALUES (2, 2::bigint, %s::bigint, 0::bigint)', :n - 2), 'first batch: version 2 created, two credentials re-encrypted');
SELECT is((SELECT count(*) FROM tenancy_private.data_keys WHERE tenant_id = :acme), 2::bigint, 'both versions exist while the rotation is unfinished');
CREATE TEMP TABLE during AS SELECT tenancy.store_credential(:slack_a, 'api_key', '{"key": "S3cret-during"}') AS id;
SELECT is((SELECT substring(encrypted_data FROM 2 FOR 4) FROM tenancy_private.credential_secrets WHERE credential_id = (SELECT id FROM during)),
          '\x00000002'::bytea, 'a credential stored mid-rotation uses the new version');
SELECT is((SELECT count(*) FROM plain_before WHERE tenancy.read_credential(id) = r), :n::bigint, 'mid-rotation, every credential reads');
SELECT results_eq(format('SELECT key_version, reencrypted, remaining, retired_versions FROM tenancy.rotate_tenant_key(%L)', :acme),
                  format('VALUES (2, %s::bigint, 0::bigint, 1::bigint)', :n - 2), 'the next call resumes it, finishes, and retires version 1');
SELECT is((SELECT array_agg(version) FROM tenancy_private.data_keys WHERE tenant_id = :acme), ARRAY[2], 'only version 2 is left');
SELECT is((SELECT count(*) FROM tenancy_private.credential_secrets WHERE tenant_id = :acme
           AND (substring(encrypted_data FROM 2 FOR 4) <> '\x00000002' OR substring(encrypted_refresh_token FROM 2 FOR 4) <> '\x00000002')),
          0::bigint, 'every ciphertext, refresh tokens included, is under version 2');
SELECT is((SELECT count(*) FROM plain_before WHERE tenancy.read_credential(id) = r), :n::bigint, 'every credential reads exactly as before');
SELECT is(tenancy.read_credential((SELECT id FROM during)) -> 'data' ->> 'key', 'S3cret-during', 'the one stored mid-rotation too');
SELECT results_eq(format('SELECT key_version, reencrypted, remaining, retired_versions FROM tenancy.rotate_tenant_key(%L)', :acme),
                  format('VALUES (3, %s::bigint, 0::bigint, 1::bigint)', :n + 1), 'a finished rotation: the next call starts a new one');
SELECT is((SELECT count(*) FROM plain_before WHERE tenancy.read_credential(id) = r), :n::bigint, 'and everything still reads');
SELECT is(pg_temp.probe('service_role', NULL, NULL, format('SELECT key_version FROM tenancy.rotate_tenant_key(%L)', :acme)), 'value:4',
          'service_role may rotate a tenant''s key');
SELECT is((SELECT array_agg(version) FROM tenancy_private.data_keys WHERE tenant_id = :globex), ARRAY[1], 'the other tenant''s key is untouched');
SELECT matches(pg_temp.error_text('SELECT tenancy.rotate_tenant_key(NULL)'), '^22004: ', 'rotate NULL');
SELECT matches(pg_temp.error_text('SELECT tenancy.rotate_tenant_key(''ffffffff-0000-4000-8000-000000000000'')'), '^P0002: ', 'rotate an unknown tenant');
SELECT matches(pg_temp.error_text(format('SELECT tenancy.rotate_tenant_key(%L, 0)', :acme)), '^22023: ', 'a batch of 0');
INSERT INTO tenancy.tenants (slug, name) VALUES ('initech', 'Initech');
SELECT results_eq('SELECT key_version, reencrypted FROM tenancy.rotate_tenant_key((SELECT id FROM tenancy.tenants WHERE slug = ''initech''))',
                  'VALUES (NULL::int, 0::bigint)', 'a tenant without keys has nothing to rotate');

-- Root key rotation needs a second key in the keyring (a server restart): the client-side tests
-- do it (pgrx-tests/tests/keyring.rs).  Here: the single-key case and who may call it.
SELECT results_eq('SELECT rewrapped, remaining FROM tenancy.rotate_root_key()', 'VALUES (0::bigint, 0::bigint)',
                  'with one root key there is nothing to rewrap');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT tenancy.rotate_root_key()'), 'error:42501', 'root key rotation is for superusers');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT count(*) FROM tenancy.root_key_usage()'), 'error:42501', 'so is the root key usage');
SELECT results_eq('SELECT key_id, in_keyring, active, matches_record, wrapped_keys FROM tenancy.root_key_usage()',
                  $$SELECT 'k1'::text, true, true, true, (SELECT count(*) FROM tenancy_private.data_keys) + (SELECT count(*) FROM tenancy_private.peppers)$$, 'root_key_usage: k1 wraps every data key and the pepper');

-- Crypto-shredding: shred_tenant destroys the tenant's data keys; its credentials are unreadable
-- for good and marked revoked; the other tenant is untouched.  Only service_role may do it.
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SELECT tenancy.shred_tenant(%L)', :acme)), 'error:42501',
          'not even the owner may shred');
SELECT is(pg_temp.probe('service_role', NULL, NULL, format('SELECT tenancy.shred_tenant(%L)', :acme)), 'value:1',
          'service_role shreds acme (one data key destroyed)');
SELECT tenancy.set_tenant(:acme);
SELECT tenancy.shred_tenant(:acme);
SELECT matches(pg_temp.error_text(format('SELECT tenancy.read_credential(%L)', (SELECT id FROM creds ORDER BY id DESC LIMIT 1))),
               '^55000: data key [0-9]+ of the tenant does not exist', 'a shredded tenant''s credential cannot be read');
SELECT is((SELECT count(*) FROM tenancy.integration_credentials WHERE tenant_id = :acme AND status <> 'revoked'), 0::bigint,
          'and every one of them is marked revoked');
SELECT is(tenancy.shred_tenant(:acme), 0, 'shredding again destroys nothing more');
SELECT tenancy.set_tenant(:globex);
SELECT is((SELECT count(*) FROM (SELECT id FROM tenancy.integration_credentials
                                  WHERE tenant_id = :globex AND id <> (SELECT id FROM victim) OFFSET 0) s
           WHERE tenancy.read_credential(s.id) IS NOT NULL),
          (SELECT count(*) FROM tenancy.integration_credentials WHERE tenant_id = :globex AND id <> (SELECT id FROM victim)),
          'the other tenant''s credentials still read');
SELECT matches(pg_temp.error_text('SELECT tenancy.shred_tenant(NULL)'), '^22004: ', 'shred NULL');
SELECT matches(pg_temp.error_text('SELECT tenancy.shred_tenant(''ffffffff-0000-4000-8000-000000000000'')'), '^P0002: ', 'shred an unknown tenant');

SELECT * FROM finish();
ROLLBACK;
