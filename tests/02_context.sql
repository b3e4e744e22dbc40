-- Tenant context: established only by the functions that check, unforgeable, fail-closed.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();

SELECT is((SELECT context FROM pg_settings WHERE name = 'tenancy.context'), 'superuser', 'tenancy.context is superuser-only (PGC_SUSET)');
\set forged '''b0000000-0000-4000-8000-000000000002,00000000-0000-4000-8000-0000000000b1,owner'''

-- Forging attempts by an authenticated member of acme who wants globex.
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SET tenancy.context = %L', :forged)), 'error:42501', 'SET is refused');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SET LOCAL tenancy.context = %L', :forged)), 'error:42501', 'SET LOCAL is refused');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SELECT set_config(''tenancy.context'', %L, true)', :forged)), 'error:42501', 'set_config(local) is refused');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SELECT set_config(''tenancy.context'', %L, false)', :forged)), 'error:42501', 'set_config(session) is refused');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'RESET tenancy.context'), 'error:42501', 'RESET is refused');
-- PostgreSQL 15+ reserves the tenancy.* prefix (MarkGUCPrefixReserved); 14 cannot, so there a
-- placeholder can be planted, and pg_tenancy reads none: the context is tenancy.context alone.
\set reserved '(current_setting(''server_version_num'')::int >= 150000)'
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SET tenancy.tenant_id = ''x'''),
          CASE WHEN :reserved THEN 'error:42602' ELSE 'rows:0' END, 'no other tenancy.* name can be planted (14: planted, read by nothing)');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SELECT set_config(''tenancy.role'', ''owner'', true)'),
          CASE WHEN :reserved THEN 'error:42602' ELSE 'value:owner' END, 'not even through set_config (14: planted, read by nothing)');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, 'SET tenancy.anything_else = ''x'''),
          CASE WHEN :reserved THEN 'error:42602' ELSE 'rows:0' END, 'no placeholder can be created under the tenancy prefix (14: planted, read by nothing)');
SELECT is(pg_temp.probe('authenticated', :acme, :dave,
                        'WITH planted AS MATERIALIZED (SELECT set_config(''tenancy.role'', ''owner'', true) AS r, set_config(''tenancy.tenant_id'', ''b0000000-0000-4000-8000-000000000002'', true) AS t)
                         SELECT tenancy.current_role() || '','' || tenancy.current_tenant_id() FROM planted WHERE r IS NOT NULL OR t IS NOT NULL'),
          CASE WHEN :reserved THEN 'error:42602' ELSE 'value:member,' || :acme END, 'a planted tenancy.role or tenancy.tenant_id changes nothing');
-- (SET ROLE is tried by the client-side tests: here the session user is a superuser.)
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('ALTER ROLE authenticated SET tenancy.context = %L', :forged)), 'error:42501', 'ALTER ROLE ... SET is refused');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format('SELECT tenancy.set_tenant(%L)', :globex)), 'error:42501', 'set_tenant into a tenant one is not a member of is refused');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SELECT tenancy.set_tenant(%L, %L)', :globex, :frank)), 'error:42501', 'only service_role may act as another user');
SELECT is(pg_temp.probe('authenticated', NULL, NULL, format('SELECT tenancy.set_tenant(%L)', :acme)), 'error:28000', 'set_tenant without a user in the context');

-- A member learns nothing about tenants they do not belong to: same error for an unknown tenant.
SELECT is(pg_temp.probe('authenticated', :acme, :dave, 'SELECT tenancy.set_tenant(''b0000000-0000-4000-8000-000000000002'')'),
          pg_temp.probe('authenticated', :acme, :dave, 'SELECT tenancy.set_tenant(''ffffffff-0000-4000-8000-000000000002'')'),
          'an existing and a missing tenant give the same answer');
SELECT throws_ok($$SELECT tenancy.set_tenant('ffffffff-0000-4000-8000-000000000002')$$, 'P0002', 'tenant does not exist',
                 'service_role is told when a tenant does not exist');

-- Legitimate switches.
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SELECT tenancy.set_tenant(%L)', :globex)), 'value:member',
          'alice switches to globex, where she is a member');
SELECT is(tenancy.set_tenant(:acme, :bob), 'admin', 'service_role acts for bob in acme');
SELECT is(tenancy.current_role(), 'admin', 'current_role() follows');
SELECT is(tenancy.current_user_id(), :bob::uuid, 'current_user_id() follows');
SELECT throws_ok(format('SELECT tenancy.set_tenant(%L)', :globex), '42501', NULL,
                 'without as_user, set_tenant acts as the user in the context (bob is not in globex)');
SELECT tenancy.clear_context();
SELECT is(tenancy.set_tenant(:globex), 'service', 'service_role enters a tenant without a user');
SELECT is(tenancy.current_user_id(), NULL, 'with no user in the context');

-- Savepoints: ROLLBACK TO restores the previous context.
SELECT tenancy.set_tenant(:acme, :alice);
SAVEPOINT before_switch;
SELECT tenancy.set_tenant(:globex, :frank);
SELECT is(tenancy.current_tenant_id(), :globex::uuid, 'inside the savepoint: globex');
ROLLBACK TO SAVEPOINT before_switch;
SELECT is(tenancy.current_tenant_id(), :acme::uuid, 'after ROLLBACK TO SAVEPOINT: acme again');
SELECT is(tenancy.current_user_id(), :alice::uuid, 'and alice again');
SELECT lives_ok('SELECT tenancy.clear_context()', 'clear_context()');
SELECT ok(tenancy.current_tenant_id() IS NULL AND tenancy.current_user_id() IS NULL AND tenancy.current_role() IS NULL,
          'after clear_context() everything is NULL');

-- Suspended tenants cannot be entered.
UPDATE tenancy.tenants SET status = 'suspended' WHERE id = :globex;
SELECT throws_ok(format('SELECT tenancy.set_tenant(%L, %L)', :globex, :frank), '42501', 'tenant is suspended', 'a suspended tenant is refused');
UPDATE tenancy.tenants SET status = 'active' WHERE id = :globex;

SELECT is((SELECT array_agg(tgrelid::regclass::text ORDER BY tgrelid::regclass::text) FROM pg_trigger WHERE tgname = 'tenancy_invalidate_caches'),
          ARRAY['tenancy.actions', 'tenancy.api_keys', 'tenancy.field_mappings', 'tenancy.memberships', 'tenancy.tenants',
                'tenancy_private.api_key_hashes', 'tenancy_private.data_keys', 'tenancy_private.peppers',
                'tenancy_private.root_keys'],
          'every cached table carries the invalidation trigger');

-- The membership cache never outlives the rows it came from.  (Destructive: rolled back after.)
SAVEPOINT cache_tests;
SELECT is(tenancy.set_tenant(:acme, :dave), 'member', 'cache: dave is a member (and now cached)');
UPDATE tenancy.memberships SET role = 'manager' WHERE tenant_id = :acme AND user_id = :dave;
SELECT is(tenancy.set_tenant(:acme, :dave), 'manager', 'cache: a role change is seen at the next command');
DELETE FROM tenancy.memberships WHERE tenant_id = :acme AND user_id = :dave;
SELECT throws_ok(format('SELECT tenancy.set_tenant(%L, %L)', :acme, :dave), '42501', NULL, 'cache: a removed member is refused at once');
SAVEPOINT sp_member;
INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES (:acme, :dave, 'admin');
SELECT is(tenancy.set_tenant(:acme, :dave), 'admin', 'cache: a new membership is seen');
ROLLBACK TO SAVEPOINT sp_member;
SELECT throws_ok(format('SELECT tenancy.set_tenant(%L, %L)', :acme, :dave), '42501', NULL,
                 'cache: nothing cached from a rolled-back savepoint survives');
SELECT tenancy.clear_context();
SELECT is(tenancy.set_tenant(:globex, :frank), 'owner', 'cache: frank owns globex');
TRUNCATE tenancy.memberships CASCADE;
SELECT throws_ok(format('SELECT tenancy.set_tenant(%L, %L)', :globex, :frank), '42501', NULL, 'cache: TRUNCATE is seen');
DELETE FROM tenancy.users WHERE id = :frank;
SELECT tenancy.clear_context();
SELECT is(tenancy.set_tenant(:globex), 'service', 'cache: the tenant is still there');
DELETE FROM tenancy.tenants WHERE id = :globex;
SELECT throws_ok(format('SELECT tenancy.set_tenant(%L)', :globex), 'P0002', NULL, 'cache: a deleted tenant is gone at once');
ROLLBACK TO SAVEPOINT cache_tests;
SELECT tenancy.clear_context();

-- Only invalidations of the cached tables empty the caches: no role empties every backend's caches
-- with temporary tables or ANALYZE (before 0.3.0 any relation's invalidation did).
SELECT (tenancy.library_info() ->> 'cache_resets')::bigint AS resets_before \gset
CREATE TEMP TABLE cache_flood (x int);
ANALYZE cache_flood;
DROP TABLE cache_flood;
SELECT is((tenancy.library_info() ->> 'cache_resets')::bigint, :resets_before::bigint,
          'cache: temporary tables and ANALYZE leave the caches alone');
UPDATE tenancy.tenants SET name = name WHERE id = :acme;
SELECT cmp_ok((tenancy.library_info() ->> 'cache_resets')::bigint, '>', :resets_before::bigint,
              'cache: a write to a cached table empties them');

-- Garbage in the GUCs (only a superuser can put it there) reads as no context: fail closed.
SET LOCAL tenancy.context = 'not-a-uuid,also-not,king';
SELECT ok(tenancy.current_tenant_id() IS NULL AND tenancy.current_role() IS NULL, 'unparsable context reads as NULL');
SELECT tenancy.clear_context();

-- Bad input.
SELECT throws_ok('SELECT tenancy.set_tenant(NULL)', '22004', 'tenant_id must not be NULL', 'NULL tenant');
SELECT throws_ok($$SELECT tenancy.set_tenant('not-a-uuid')$$, '22P02', NULL, 'malformed uuid');

-- pre_request(): the claims PostgREST verified.
SELECT is(pg_temp.postgrest('authenticated', jsonb_build_object('sub', :bob, 'role', 'authenticated', 'tenant_id', :acme),
          'SELECT tenancy.current_role()'), 'value:admin', 'tenant from the tenant_id claim');
SELECT is(pg_temp.postgrest('authenticated', jsonb_build_object('sub', :alice, 'role', 'authenticated'),
          'SELECT coalesce(tenancy.current_tenant_id()::text, ''none'') || '' '' || tenancy.current_user_id()'),
          'value:none ' || :alice, 'no tenant in the claims: user only');
SELECT is(pg_temp.postgrest('authenticated', jsonb_build_object('sub', :alice, 'role', 'authenticated'),
          'SELECT count(*) FROM tenancy.projects'), 'value:0', 'user without tenant sees no tenant rows');
SELECT set_config('request.headers', jsonb_build_object('x-tenant-id', :globex)::text, true);
SELECT is(pg_temp.postgrest('authenticated', jsonb_build_object('sub', :alice, 'role', 'authenticated'),
          'SELECT tenancy.current_tenant_id()'), 'value:' || :globex, 'tenant from the X-Tenant-Id header');
SELECT set_config('request.headers', '', true);
SELECT is(pg_temp.postgrest('authenticated', '{"sub": "not-a-uuid"}', 'SELECT 1'), 'error:28000', 'sub must be a uuid');
SELECT is(pg_temp.postgrest('authenticated', '{"sub": 42}', 'SELECT 1'), 'error:28000', 'sub must be a string');
SELECT is(pg_temp.postgrest('authenticated', '[1, 2]', 'SELECT 1'), 'error:28000', 'claims must be an object');
SELECT is(pg_temp.postgrest('service_role', jsonb_build_object('role', 'service_role', 'tenant_id', :globex),
          'SELECT tenancy.current_role()'), 'value:service', 'service_role with a tenant claim enters it as the service');
SELECT is(pg_temp.postgrest('anon', '{}', 'SELECT tenancy.current_tenant_id()'), 'value:NULL', 'anon: no context');

SELECT * FROM finish();
ROLLBACK;
