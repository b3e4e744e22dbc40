-- Operations: health(), seed_demo(), enable_tenant_isolation() for users' tables.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();

SELECT is(tenancy.health() ->> 'extension_version', (SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'),
          'health: extension version');
SELECT is(tenancy.health() ->> 'library_version', tenancy.health() ->> 'extension_version', 'health: library version matches');
SELECT is((tenancy.health() ->> 'preloaded')::boolean, true, 'health: the library was preloaded');
SELECT is((tenancy.health() ->> 'rls_forced_everywhere')::boolean, true, 'health: RLS forced on every table');
SELECT is((tenancy.health() ->> 'keyring_loaded')::boolean, true, 'health: the keyring was loaded at server start');
SELECT is(tenancy.health() ->> 'active_root_key', 'k1', 'health: names the active root key');
SELECT is(position(split_part(split_part(pg_read_file(current_setting('tenancy.keyring_file')), E'\n', 2), ' ', 2)
                   IN tenancy.health()::text), 0, 'health: never shows key material');
SELECT is((tenancy.health(true) -> 'row_counts' ->> 'memberships')::int, 11, 'health: exact row counts');
ALTER TABLE tenancy.jobs NO FORCE ROW LEVEL SECURITY;
SELECT is(tenancy.health() -> 'tables_without_forced_rls', '["jobs"]'::jsonb, 'health: names a table whose RLS is not forced');
ALTER TABLE tenancy.jobs FORCE ROW LEVEL SECURITY;

-- seed_demo() is idempotent.
CREATE TEMP TABLE before AS SELECT tenancy.health(true) -> 'row_counts' AS c;
SELECT lives_ok('SELECT tenancy.seed_demo()', 'seed_demo() a second time');
SELECT is(tenancy.health(true) -> 'row_counts', (SELECT c FROM before), 'changes no row count');

-- A user's own table joins the model.
CREATE TABLE public.notes (
    tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    body text NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
INSERT INTO public.notes (tenant_id, body) VALUES (:acme, 'acme note'), (:globex, 'globex note');
SELECT lives_ok($$SELECT tenancy.enable_tenant_isolation('public.notes')$$, 'enable_tenant_isolation(public.notes)');
SELECT lives_ok($$SELECT tenancy.enable_tenant_isolation('public.notes')$$, 'and again (idempotent)');
SELECT is_empty($$SELECT * FROM tenancy.index_exposures() WHERE table_name = 'public.notes'::regclass$$,
                'notes: its only index leads with tenant_id');
CREATE INDEX notes_body_idx ON public.notes (body);
CREATE INDEX notes_tenant_body_idx ON public.notes (tenant_id, body);
CREATE INDEX notes_lower_body_idx ON public.notes (lower(body));
SELECT results_eq($$SELECT index_name::text COLLATE "C", leading_column::text COLLATE "C" FROM tenancy.index_exposures() WHERE table_name = 'public.notes'::regclass$$,
                  $$VALUES ('notes_body_idx' COLLATE "C", 'body' COLLATE "C")$$,
                  'index_exposures(): an index on (body) alone exposes notes, (tenant_id, body) and lower(body) do not');
SELECT lives_ok($$SELECT tenancy.enable_tenant_isolation('public.notes')$$, 'enable_tenant_isolation warns, and goes on');
DROP INDEX public.notes_body_idx, public.notes_tenant_body_idx, public.notes_lower_body_idx;
SELECT ok((SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE oid = 'public.notes'::regclass), 'RLS enabled and forced');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, 'SELECT string_agg(body, '','') FROM public.notes'), 'value:acme note', 'a member sees their tenant''s notes only');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format('INSERT INTO public.notes (tenant_id, body) VALUES (%L, ''x'')', :globex)), 'error:42501', 'and cannot write into another tenant');
SELECT is(pg_temp.probe('authenticated', :acme, :erin, format('INSERT INTO public.notes (tenant_id, body) VALUES (%L, ''x'')', :acme)), 'error:42501', 'a client cannot write');
SELECT is(pg_temp.probe('authenticated', NULL, NULL, 'SELECT count(*) FROM public.notes'), 'value:0', 'no context, no rows');
SELECT is(pg_temp.probe('anon', NULL, NULL, 'SELECT count(*) FROM public.notes'), 'error:42501', 'anon has no access');
SELECT is(pg_temp.probe('service_role', NULL, NULL, 'SELECT count(*) FROM public.notes'), 'value:2', 'service_role sees all');
CREATE TABLE public.no_tenant (id int);
SELECT throws_ok($$SELECT tenancy.enable_tenant_isolation('public.no_tenant')$$, '42703', NULL, 'a table without tenant_id');
SELECT throws_ok($$SELECT tenancy.enable_tenant_isolation(NULL)$$, '22004', NULL, 'NULL');

-- DROP EXTENSION and CREATE EXTENSION again, in the same transaction (no Supabase mirror here).
SELECT lives_ok('DROP TABLE public.notes, public.no_tenant', 'drop the tables that use the extension');
SELECT lives_ok('DROP EXTENSION pg_tenancy', 'DROP EXTENSION');
SELECT is((SELECT count(*) FROM pg_class WHERE relnamespace = 'tenancy'::regnamespace)
          + (SELECT count(*) FROM pg_proc WHERE pronamespace = 'tenancy'::regnamespace)
          + (SELECT count(*) FROM pg_type WHERE typnamespace = 'tenancy'::regnamespace), 0::bigint,
          'nothing is left behind (the schema itself stays, empty, as PostgreSQL does for an extension''s schema)');
SELECT lives_ok('CREATE EXTENSION pg_tenancy', 'CREATE EXTENSION again');
SELECT is((tenancy.health() ->> 'rls_forced_everywhere')::boolean, true, 'and it is whole again');

SELECT * FROM finish();
ROLLBACK;
