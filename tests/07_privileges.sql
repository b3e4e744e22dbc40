-- Privileges: nothing for PUBLIC, pinned search paths, forced RLS, no table for anon.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();

SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) FROM pg_proc p
     WHERE p.pronamespace = 'tenancy'::regnamespace
       AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) x WHERE x.grantee = 0))),
    NULL, 'no function of the extension is executable by PUBLIC');
SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) FROM pg_proc p
     WHERE p.pronamespace = 'tenancy'::regnamespace AND p.prosecdef
       AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
    NULL, 'every SECURITY DEFINER function pins search_path to pg_catalog, pg_temp');
SELECT is(
    (SELECT array_agg(p.oid::regprocedure::text ORDER BY p.oid::regprocedure::text) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
     WHERE p.pronamespace = 'tenancy'::regnamespace AND l.lanname = 'plpgsql'
       AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)),
    NULL, 'every plpgsql function pins search_path');
SELECT is(
    (SELECT array_agg(c.relname::text ORDER BY c.relname::text) FROM pg_class c
     WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p')
       AND NOT (c.relrowsecurity AND c.relforcerowsecurity)),
    NULL, 'every table has RLS enabled and forced');
SELECT is(
    (SELECT array_agg(DISTINCT c.relname::text) FROM pg_class c, aclexplode(c.relacl) x
     WHERE c.relnamespace = 'tenancy'::regnamespace AND x.grantee IN (0, 'anon'::regrole)),
    NULL, 'anon and PUBLIC have no privilege on any table');
SELECT is(
    (SELECT array_agg(c.relname::text) FROM pg_class c WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relispartition
       AND c.relacl IS NOT NULL AND EXISTS (SELECT 1 FROM aclexplode(c.relacl) x WHERE x.grantee <> c.relowner)),
    NULL, 'no role has a privilege on a partition');
SELECT is(
    (SELECT array_agg(DISTINCT c.relname::text) FROM pg_class c, aclexplode(c.relacl) x
     WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relname IN ('request_logs', 'subscription_audit')
       AND x.privilege_type IN ('UPDATE', 'DELETE', 'TRUNCATE') AND x.grantee <> c.relowner),
    NULL, 'append-only tables: no UPDATE, DELETE or TRUNCATE for any role');
SELECT ok(NOT has_schema_privilege('authenticated', 'tenancy', 'CREATE'), 'authenticated cannot create objects in tenancy');
SELECT ok(NOT has_schema_privilege('service_role', 'tenancy', 'CREATE'), 'service_role cannot create objects in tenancy');
SELECT is(
    (SELECT array_agg(p.proname::text || ':' || p.provolatile::text || p.proparallel::text ORDER BY p.proname) FROM pg_proc p
     WHERE p.pronamespace = 'tenancy'::regnamespace AND p.proname IN ('current_tenant_id', 'current_user_id', 'current_role')),
    ARRAY['current_role:ss', 'current_tenant_id:ss', 'current_user_id:ss'], 'context readers are STABLE and PARALLEL SAFE');
SELECT ok(has_function_privilege('anon', 'tenancy.pre_request()', 'EXECUTE'), 'anon may call pre_request (PostgREST calls it for every request)');
SELECT ok(NOT has_function_privilege('anon', 'tenancy.set_tenant(uuid, uuid)', 'EXECUTE'), 'anon may not call set_tenant');
SELECT ok(NOT has_function_privilege('authenticated', 'tenancy.seed_demo()', 'EXECUTE'), 'authenticated may not seed');
SELECT ok(NOT has_function_privilege('authenticated', 'tenancy._isolate(regclass, text[], text[], text[], text[], boolean, boolean)', 'EXECUTE'), 'internal functions are not granted');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT tenancy.seed_demo()'), 'error:42501', 'calling an ungranted function fails');

SELECT ok(NOT EXISTS (SELECT 1 FROM pg_settings WHERE name LIKE 'tenancy.keyring%'), 'the keyring settings are not listed by SHOW ALL / pg_settings');
SELECT is(pg_temp.probe('authenticated', NULL, NULL, 'SELECT current_setting(''tenancy.keyring_file'')'), 'error:42501',
          'only superusers can read where the keyring is');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT tenancy.generate_root_key()'), 'error:42501',
          'generate_root_key is for superusers only');

-- Version-specific privileges.  15+: SET on a parameter can be granted; no application role has it
-- on tenancy.context (it would forge a context).  17+: MAINTAIN (VACUUM, LOCK, REINDEX, ...) is
-- granted to no application role on any of our tables.
SELECT CASE WHEN current_setting('server_version_num')::int >= 150000
            THEN is(pg_temp.scalar($$SELECT count(*) FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) r
                                       WHERE has_parameter_privilege(r, 'tenancy.context', 'SET')$$), '0',
                    'no application role may SET tenancy.context (GRANT SET ON PARAMETER, 15+)')
            ELSE skip('GRANT SET ON PARAMETER exists from PostgreSQL 15', 1) END;
SELECT CASE WHEN current_setting('server_version_num')::int >= 170000
            THEN is(pg_temp.scalar($$SELECT count(*) FROM pg_class c, unnest(ARRAY['anon', 'authenticated', 'service_role']) r
                                       WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p')
                                         AND has_table_privilege(r, c.oid, 'MAINTAIN')$$), '0',
                    'no application role has MAINTAIN on any table (17+)')
            ELSE skip('MAINTAIN exists from PostgreSQL 17', 1) END;

-- What the extension writes with its own privileges (log_request, the vault) runs no code an
-- application could have put there: only the extension's C triggers and the foreign keys' own.
SELECT is(
    (SELECT array_agg(DISTINCT t.tgrelid::regclass::text || ': ' || p.proname) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
     WHERE NOT t.tgisinternal
       AND (t.tgrelid IN ('tenancy.integration_credentials'::regclass, 'tenancy.request_logs'::regclass)
            OR t.tgrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'tenancy.request_logs'::regclass))
       AND NOT (p.pronamespace = 'tenancy'::regnamespace AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c'))),
    NULL, 'tables written with the extension''s privileges have no trigger but the extension''s own C triggers');
SELECT is(
    (SELECT array_agg(DISTINCT tgrelid::regclass::text) FROM pg_trigger WHERE tgname LIKE 'tenancy_invalidate_caches%' AND tgenabled <> 'A'),
    NULL, 'cache invalidation fires ALWAYS (also when logical replication applies a change)');

-- No temporary objects and no SQL PREPARE by name for the application roles
-- (src/session_state.rs): a pooled server connection would pass them to its next client.
-- Nor their members that only switch to them (NOINHERIT, like PostgREST's authenticator): the
-- clients' SQL could RESET ROLE to such a login.  Superusers and roles outside them may.
CREATE ROLE pgt_priv_inherits IN ROLE authenticated;
CREATE ROLE pgt_priv_switches NOINHERIT IN ROLE authenticated;
SELECT throws_ok(format('SET LOCAL ROLE %s; %s', r, s), '42501',
                 'the application roles may not create temporary objects',
                 format('%s: %s is refused', r, split_part(s, ' (', 1)))
FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'pgt_priv_inherits', 'pgt_priv_switches']) r,
     unnest(ARRAY['CREATE TEMP TABLE pgt_t (i int)',
                  'CREATE TABLE pg_temp.pgt_t (i int)',
                  'SELECT 1 AS i INTO TEMP pgt_t',
                  'CREATE TEMP VIEW pgt_v AS SELECT 1',
                  'CREATE TEMP SEQUENCE pgt_s',
                  'CREATE FUNCTION pg_temp.pgt_f() RETURNS int LANGUAGE sql AS ''SELECT 1''',
                  'CREATE DOMAIN pg_temp.uuid AS pg_catalog.uuid',
                  'CREATE TYPE pg_temp.pgt_e AS ENUM (''a'')']) s;
RESET ROLE;
CREATE ROLE pgt_priv_outside;
SELECT lives_ok($$SET LOCAL ROLE pgt_priv_outside; CREATE TEMP TABLE pgt_outsider (i int)$$,
                'a role outside the application roles may create a temporary table');
RESET ROLE;
SELECT lives_ok($$CREATE TEMP TABLE pgt_superuser (i int); CREATE DOMAIN pg_temp.pgt_d AS int$$,
                'a superuser may create temporary objects');
SELECT lives_ok($$SET LOCAL ROLE authenticated; WITH s AS (SELECT 1) SELECT * FROM s$$,
                'an application role still uses what lives only for its statement');
RESET ROLE;
SELECT throws_ok(format('SET LOCAL ROLE %s; %s', r, s), '42501',
                 'the application roles may not PREPARE or DEALLOCATE a statement by name in SQL',
                 format('%s: %s is refused', r, split_part(s, ' AS', 1)))
FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'pgt_priv_inherits', 'pgt_priv_switches']) r,
     unnest(ARRAY['PREPARE pgt_p AS SELECT 1', 'DEALLOCATE pgt_p', 'DEALLOCATE PREPARE pgt_p']) s;
RESET ROLE;
SELECT lives_ok($$SET LOCAL ROLE authenticated; DEALLOCATE ALL$$,
                'an application role may DEALLOCATE ALL (a pooler''s reset)');
RESET ROLE;
SELECT lives_ok($$SET LOCAL ROLE pgt_priv_outside; PREPARE pgt_outsider_p AS SELECT 1; DEALLOCATE pgt_outsider_p$$,
                'a role outside the application roles may PREPARE');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
