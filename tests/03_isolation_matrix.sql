-- The isolation matrix, generated from the catalog: every table of schema tenancy with a
-- tenant_id column (a new table cannot escape it), attacked by tenant A's owner, with no context,
-- as anon, and checked as service_role.  Then every composite foreign key between tenant-owned
-- tables is tried across tenants.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();

-- Fixture rows for the tables the demo leaves empty (the API key hash is a dummy here).
INSERT INTO tenancy.api_keys (tenant_id, name, prefix)
SELECT t, 'fixture', 'tk_test_fx' FROM unnest(ARRAY[:acme, :globex]::uuid[]) t;
INSERT INTO tenancy_private.api_key_hashes (tenant_id, key_id, key_hash)
SELECT tenant_id, id, sha256(id::text::bytea) FROM tenancy.api_keys;
INSERT INTO tenancy_private.api_key_usage (tenant_id, key_id, last_used_at) SELECT tenant_id, id, now() FROM tenancy.api_keys;
CREATE FUNCTION pg_temp.store_fixture_credentials() RETURNS void LANGUAGE plpgsql AS $$
DECLARE i record;
BEGIN
    FOR i IN SELECT tenant_id, id FROM tenancy.integrations LOOP
        PERFORM tenancy.set_tenant(i.tenant_id);
        PERFORM tenancy.store_credential(i.id, 'bearer', '{"token": "fixture"}');
    END LOOP;
    PERFORM tenancy.clear_context();
END $$;
SELECT pg_temp.store_fixture_credentials();

-- internal: tables no application role may read at all (tenancy_private: the vault's keys and
-- ciphertexts, API-key hashes and usage).
CREATE TEMP TABLE tenant_tables AS
SELECT c.oid::regclass AS tbl, c.relname::text AS name,
       NOT has_any_column_privilege('authenticated', c.oid, 'SELECT') AS internal
FROM pg_class c
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition
ORDER BY 2;
SELECT is((SELECT array_agg(name ORDER BY name) FROM tenant_tables WHERE internal),
          ARRAY['api_key_hashes', 'api_key_usage', 'credential_secrets', 'data_keys'],
          'the internal tenant tables are exactly those of tenancy_private');

SELECT cmp_ok((SELECT count(*) FROM tenant_tables), '>=', 15::bigint, 'the matrix covers every tenant-owned table');

CREATE FUNCTION pg_temp.matrix(a uuid, b uuid, a_owner uuid, b_owner uuid) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    a_rows bigint;
    b_rows bigint;
    all_rows bigint;
    row_a jsonb;
    row_b jsonb;
    outcome text;
BEGIN
    FOR r IN SELECT * FROM tenant_tables LOOP
        EXECUTE format('SELECT count(*) FILTER (WHERE tenant_id = $1), count(*) FILTER (WHERE tenant_id = $2), count(*) FROM %s', r.tbl)
            INTO a_rows, b_rows, all_rows USING a, b;
        RETURN NEXT ok(a_rows > 0 AND b_rows > 0, r.name || ': fixture has rows of both tenants');
        IF r.internal THEN
            FOREACH outcome IN ARRAY ARRAY[
                pg_temp.probe('authenticated', a, a_owner, format('SELECT count(*) FROM %s', r.tbl)),
                pg_temp.probe('authenticated', a, a_owner, format('DELETE FROM %s', r.tbl)),
                pg_temp.probe('anon', NULL, NULL, format('SELECT count(*) FROM %s', r.tbl)),
                pg_temp.probe('service_role', NULL, NULL, format('SELECT count(*) FROM %s', r.tbl)),
                pg_temp.probe('service_role', NULL, NULL, format('DELETE FROM %s', r.tbl))] LOOP
                RETURN NEXT is(outcome, 'error:42501', r.name || ': internal, no application role reads or writes it');
            END LOOP;
            CONTINUE;
        END IF;
        EXECUTE format('SELECT to_jsonb(t) FROM %s t WHERE tenant_id = $1 LIMIT 1', r.tbl) INTO row_a USING a;
        EXECUTE format('SELECT to_jsonb(t) FROM %s t WHERE tenant_id = $1 LIMIT 1', r.tbl) INTO row_b USING b;

        -- Tenant A's owner (the most privileged member).
        -- (memberships: a user also sees their own memberships in other tenants, by design.)
        RETURN NEXT is(pg_temp.probe('authenticated', a, a_owner,
            format('SELECT count(*) FROM %s WHERE tenant_id <> %L %s', r.tbl, a,
                   CASE WHEN r.name = 'memberships' THEN format('AND user_id <> %L', a_owner) ELSE '' END)), 'value:0',
            r.name || ': A sees no row of another tenant');
        RETURN NEXT is(pg_temp.probe('authenticated', a, a_owner,
            format('SELECT count(*) FROM %s WHERE tenant_id = %L', r.tbl, a)),
            'value:' || a_rows, r.name || ': A''s owner sees all of A''s rows');
        RETURN NEXT is(pg_temp.probe('authenticated', b, b_owner,
            format('SELECT count(*) FROM %s WHERE tenant_id <> %L %s', r.tbl, b,
                   CASE WHEN r.name = 'memberships' THEN format('AND user_id <> %L', b_owner) ELSE '' END)), 'value:0',
            r.name || ': B sees no row of another tenant');
        outcome := pg_temp.probe('authenticated', a, a_owner,
            format('UPDATE %s SET tenant_id = tenant_id WHERE tenant_id = %L', r.tbl, b));
        RETURN NEXT ok(outcome IN ('rows:0', 'error:42501'), r.name || ': A cannot update B''s rows (' || outcome || ')');
        outcome := pg_temp.probe('authenticated', a, a_owner, format('DELETE FROM %s WHERE tenant_id = %L', r.tbl, b));
        RETURN NEXT ok(outcome IN ('rows:0', 'error:42501'), r.name || ': A cannot delete B''s rows (' || outcome || ')');
        RETURN NEXT is(pg_temp.probe('authenticated', a, a_owner,
            format('INSERT INTO %s SELECT * FROM jsonb_populate_record(NULL::%s, %L)', r.tbl, r.tbl, row_b)),
            'error:42501', r.name || ': A cannot insert a row into B');
        RETURN NEXT is(pg_temp.probe('authenticated', a, a_owner,
            format('UPDATE %s SET tenant_id = %L WHERE tenant_id = %L', r.tbl, b, a)),
            'error:42501', r.name || ': A cannot move its rows to B');
        outcome := pg_temp.probe('authenticated', a, a_owner,
            format('SELECT count(*) FROM (SELECT 1 FROM %s WHERE tenant_id = %L FOR UPDATE) s', r.tbl, b));
        RETURN NEXT ok(outcome IN ('value:0', 'error:42501'), r.name || ': A cannot lock B''s rows (' || outcome || ')');

        -- No context at all: fail closed.
        RETURN NEXT is(pg_temp.probe('authenticated', NULL, NULL, format('SELECT count(*) FROM %s', r.tbl)),
            'value:0', r.name || ': without context nothing is visible');
        RETURN NEXT is(pg_temp.probe('authenticated', NULL, NULL,
            format('INSERT INTO %s SELECT * FROM jsonb_populate_record(NULL::%s, %L)', r.tbl, r.tbl, row_a)),
            'error:42501', r.name || ': without context nothing can be inserted');
        outcome := pg_temp.probe('authenticated', NULL, NULL, format('UPDATE %s SET tenant_id = tenant_id', r.tbl));
        RETURN NEXT ok(outcome IN ('rows:0', 'error:42501'), r.name || ': without context nothing can be updated (' || outcome || ')');
        outcome := pg_temp.probe('authenticated', NULL, NULL, format('DELETE FROM %s', r.tbl));
        RETURN NEXT ok(outcome IN ('rows:0', 'error:42501'), r.name || ': without context nothing can be deleted (' || outcome || ')');

        -- anon sees nothing, with or without a context.
        outcome := pg_temp.probe('anon', NULL, NULL, format('SELECT count(*) FROM %s', r.tbl));
        RETURN NEXT ok(outcome IN ('value:0', 'error:42501'), r.name || ': anon sees nothing (' || outcome || ')');
        outcome := pg_temp.probe('anon', a, a_owner, format('SELECT count(*) FROM %s', r.tbl));
        RETURN NEXT ok(outcome IN ('value:0', 'error:42501'), r.name || ': anon sees nothing even with a context (' || outcome || ')');

        -- service_role sees everything.
        RETURN NEXT is(pg_temp.probe('service_role', NULL, NULL, format('SELECT count(*) FROM %s', r.tbl)),
            'value:' || all_rows, r.name || ': service_role sees every row');
    END LOOP;
END
$$;
SELECT * FROM pg_temp.matrix(:acme, :globex, :alice, :frank);

-- Every composite foreign key between tenant-owned tables: a child row of A that points at a
-- parent of B is refused by the foreign key itself (as superuser, so no policy is involved).
CREATE FUNCTION pg_temp.cross_tenant_fks(a uuid, b uuid) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    fk record;
    child jsonb;
    parent jsonb;
    k int;
    n int := 0;
BEGIN
    FOR fk IN
        SELECT con.conname, con.conrelid::regclass AS child_tbl, con.confrelid::regclass AS parent_tbl,
               array_agg(ca.attname::text ORDER BY u.i) AS child_cols,
               array_agg(pa.attname::text ORDER BY u.i) AS parent_cols
        FROM pg_constraint con
        CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS u(ck, pk, i)
        JOIN pg_attribute ca ON ca.attrelid = con.conrelid AND ca.attnum = u.ck
        JOIN pg_attribute pa ON pa.attrelid = con.confrelid AND pa.attnum = u.pk
        WHERE con.contype = 'f' AND con.connamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
          AND NOT EXISTS (SELECT 1 FROM pg_class p WHERE p.oid = con.conrelid AND p.relispartition)
          AND con.conparentid = 0
        GROUP BY con.oid, con.conname, con.conrelid, con.confrelid
        HAVING 'tenant_id' = ANY (array_agg(ca.attname::text)) AND count(*) > 1
        ORDER BY con.conname
    LOOP
        n := n + 1;
        EXECUTE format('SELECT to_jsonb(t) FROM %s t WHERE tenant_id = $1 LIMIT 1', fk.child_tbl) INTO child USING a;
        -- A parent of B whose key does not also exist in A (alice is a member of both tenants).
        EXECUTE format('SELECT to_jsonb(p) FROM %s p WHERE tenant_id = $1 AND NOT EXISTS (
                           SELECT 1 FROM %s q WHERE q.tenant_id = $2 AND (%s) = (%s)) LIMIT 1',
                       fk.parent_tbl, fk.parent_tbl,
                       (SELECT string_agg('q.' || quote_ident(c), ', ') FROM unnest(fk.parent_cols) c WHERE c <> 'tenant_id'),
                       (SELECT string_agg('p.' || quote_ident(c), ', ') FROM unnest(fk.parent_cols) c WHERE c <> 'tenant_id'))
            INTO parent USING b, a;
        FOR k IN 1 .. array_length(fk.child_cols, 1) LOOP
            IF fk.child_cols[k] <> 'tenant_id' THEN
                child := child || jsonb_build_object(fk.child_cols[k], parent -> fk.parent_cols[k]);
            END IF;
        END LOOP;
        IF child ? 'id' THEN
            child := child || jsonb_build_object('id', gen_random_uuid());
        END IF;
        RETURN NEXT throws_ok(
            format('INSERT INTO %s SELECT * FROM jsonb_populate_record(NULL::%s, %L)', fk.child_tbl, fk.child_tbl, child),
            '23503', NULL, fk.conname || ': a row of A cannot reference a row of B');
    END LOOP;
    RETURN NEXT cmp_ok(n, '>=', 10, 'every composite foreign key was tried');
END
$$;
SELECT * FROM pg_temp.cross_tenant_fks(:acme, :globex);

-- Global tables: tenants and users.
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT string_agg(slug, '','') FROM tenancy.tenants'),
          'value:acme', 'tenants: a member sees only the current tenant');
SELECT is(pg_temp.probe('authenticated', :acme, :alice,
          format('UPDATE tenancy.tenants SET name = %L WHERE id = %L', 'x', :globex)), 'rows:0',
          'tenants: A cannot rename B');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'UPDATE tenancy.tenants SET name = ''Acme 2'''), 'rows:1',
          'tenants: the owner renames the current tenant');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, 'UPDATE tenancy.tenants SET name = ''Acme 2'''), 'rows:0',
          'tenants: a plain member cannot rename it');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'UPDATE tenancy.tenants SET status = ''suspended'''), 'error:42501',
          'tenants: not even the owner changes the status');
SELECT is(pg_temp.probe('authenticated', :acme, :alice,
          'INSERT INTO tenancy.tenants (slug, name) VALUES (''evil'', ''Evil'')'), 'error:42501',
          'tenants: members cannot create tenants');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, $$UPDATE tenancy.tenants SET email = 'ops@globex.test'$$), 'error:42501',
          'tenants: not even the owner changes the e-mail address (unique across tenants: it could claim another''s)');
SELECT is(pg_temp.probe('authenticated', :acme, :dave,
          format($$INSERT INTO tenancy.jobs (tenant_id, user_id, job_type, status, progress, result, created_at)
                   VALUES (%L, %L, 'export', 'completed', 100, '{"url": "https://evil.test/x"}', '2000-01-01')$$, :acme, :dave)),
          'error:42501', 'jobs: a member cannot create a job that says it is done, or date it');
SELECT is(pg_temp.probe('authenticated', :acme, :dave,
          format($$INSERT INTO tenancy.jobs (tenant_id, user_id, job_type, parameters) VALUES (%L, %L, 'export', '{}')$$, :acme, :dave)),
          'rows:1', 'jobs: a member queues a job of its own');
SELECT is(pg_temp.probe('anon', NULL, NULL, 'CREATE TEMP TABLE squat (a tenancy.request_logs, b tenancy_private.request_logs_default)'),
          'error:42501', 'the row types of request logs are nobody''s to use (a dependent temp table would block maintenance)');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT string_agg(email, '','') FROM tenancy.users'),
          'value:alice@acme.test', 'users: a user sees only their own profile');
SELECT is(pg_temp.probe('authenticated', :acme, :alice,
          format('UPDATE tenancy.users SET name = %L WHERE id = %L', 'x', :bob)), 'rows:0',
          'users: nobody edits another user''s profile');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'UPDATE tenancy.users SET email = ''x@y.z'''), 'error:42501',
          'users: email is not editable by the user');
SELECT is(pg_temp.probe('anon', NULL, NULL, 'SELECT count(*) FROM tenancy.tenants'), 'error:42501', 'tenants: anon has no access');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT count(*) FROM tenancy.tenants'), 'value:2', 'tenants: service_role sees all');

-- Roles inside a tenant.
SELECT is(pg_temp.probe('authenticated', :acme, :dave, 'SELECT count(*) FROM tenancy.api_keys'), 'value:0',
          'api_keys: a member does not see API keys');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, 'SELECT count(*) FROM tenancy.integration_credentials'), 'value:0',
          'integration_credentials: a member does not see credentials');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SELECT count(*) FROM tenancy.integration_credentials'), 'value:1',
          'integration_credentials: an admin sees them');
SELECT is(pg_temp.probe('authenticated', :acme, :dave,
          format('INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES (%L, %L, ''owner'')', :acme, :frank)),
          'error:42501', 'memberships: a member cannot add members');
SELECT is(pg_temp.probe('authenticated', :acme, :dave,
          format('UPDATE tenancy.memberships SET role = ''owner'' WHERE user_id = %L', :dave)), 'error:42501',
          'memberships: a member cannot promote themselves');
SELECT is(pg_temp.probe('authenticated', :acme, :bob,
          format('INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES (%L, %L, ''member'')', :acme, :frank)),
          'error:42501', 'memberships: not even an admin writes the table (tenancy.add_member is the door)');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.add_member(%L)', :frank)),
          'value:true', 'memberships: an admin adds a member');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT count(*) FROM tenancy.memberships WHERE user_id = tenancy.current_user_id()'),
          'value:2', 'memberships: a user sees their own memberships in every tenant (to choose one)');
SELECT is(pg_temp.probe('authenticated', :acme, :erin, 'SELECT count(*) FROM tenancy.projects'), 'value:2',
          'projects: a client reads');
SELECT is(pg_temp.probe('authenticated', :acme, :erin, 'UPDATE tenancy.projects SET name = ''x'''), 'rows:0',
          'projects: a client does not write');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, 'UPDATE tenancy.projects SET status = ''on_hold'''), 'rows:2',
          'projects: a member writes');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'UPDATE tenancy.request_logs SET status_code = 200'), 'error:42501',
          'request_logs: append-only, even for the owner');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'DELETE FROM tenancy.subscription_audit'), 'error:42501',
          'subscription_audit: append-only, even for service_role');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT count(*) FROM tenancy_private.request_logs_default'), 'error:42501',
          'partitions are not readable directly');

-- The same through the exact PostgREST sequence.
SELECT is(pg_temp.postgrest('authenticated',
          jsonb_build_object('sub', :alice, 'role', 'authenticated', 'app_metadata', jsonb_build_object('tenant_id', :globex)),
          'SELECT string_agg(DISTINCT tenant_id::text, '','') FROM tenancy.projects'),
          'value:' || :globex, 'PostgREST: alice in globex sees globex projects only');
SELECT is(pg_temp.postgrest('authenticated',
          jsonb_build_object('sub', :frank, 'role', 'authenticated', 'tenant_id', :acme),
          'SELECT count(*) FROM tenancy.projects'),
          'error:42501', 'PostgREST: a JWT naming a tenant the user is not a member of is refused');
SELECT is(pg_temp.postgrest('anon', '{"role": "anon"}', 'SELECT tenancy.current_tenant_id()'),
          'value:NULL', 'PostgREST: anon gets no context');

SELECT * FROM finish();
ROLLBACK;
