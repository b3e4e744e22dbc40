-- updated_at: every table that has the column has the trigger, and the trigger wins over an
-- explicit value (so the check below fails without it).
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();

SELECT is(
    (SELECT array_agg(c.relname::text ORDER BY c.relname::text) FROM pg_class c
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'updated_at' AND NOT a.attisdropped
     WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
       AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'tenancy_updated_at'
                         AND t.tgfoid = 'tenancy.set_updated_at()'::regprocedure)),
    NULL, 'every table with updated_at has the tenancy_updated_at trigger');

CREATE FUNCTION pg_temp.each_table() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r record;
    stale bigint;
BEGIN
    FOR r IN SELECT c.oid::regclass AS tbl, c.relname::text AS name FROM pg_class c
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'updated_at' AND NOT a.attisdropped
             WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             ORDER BY 2 LOOP
        EXECUTE format('UPDATE %s SET updated_at = ''2000-01-01''', r.tbl);
        EXECUTE format('SELECT count(*) FROM %s WHERE updated_at <> now()', r.tbl) INTO stale;
        RETURN NEXT is(stale, 0::bigint, r.name || ': UPDATE sets updated_at to now()');
    END LOOP;
END
$$;
SELECT * FROM pg_temp.each_table();

-- Users' tables.
CREATE TABLE public.notes (id int PRIMARY KEY, body text, big text, updated_at timestamptz NOT NULL DEFAULT '2000-01-01', modified timestamp);
INSERT INTO public.notes VALUES (1, 'a', repeat('x', 100000), '2000-01-01', NULL);
SELECT lives_ok($$SELECT tenancy.manage_updated_at('public.notes')$$, 'manage_updated_at attaches the trigger');
SELECT lives_ok($$SELECT tenancy.manage_updated_at('public.notes')$$, 'and is idempotent');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'public.notes'::regclass), 1::bigint, 'one trigger, not two');
UPDATE public.notes SET body = 'b';
SELECT results_eq('SELECT body, length(big), updated_at = now() FROM public.notes',
                  $$VALUES ('b'::text, 100000, true)$$, 'the column moves, every other column (TOASTed too) is kept');
SELECT lives_ok($$SELECT tenancy.manage_updated_at('public.notes', 'modified')$$, 'a timestamp (without time zone) column');
UPDATE public.notes SET body = 'c';
SELECT is((SELECT modified FROM public.notes), now()::timestamp, 'timestamp columns get now() in the session time zone');
INSERT INTO public.notes (id, body) VALUES (2, 'inserted');
SELECT is((SELECT updated_at FROM public.notes WHERE id = 2), '2000-01-01'::timestamptz, 'INSERT keeps the default (the trigger is BEFORE UPDATE)');

-- Misuse, each with its SQLSTATE.
SELECT throws_ok($$SELECT tenancy.manage_updated_at(NULL)$$, '22004', NULL, 'NULL table');
SELECT throws_ok($$SELECT tenancy.manage_updated_at('public.notes', 'nope')$$, '42703', NULL, 'missing column');
SELECT throws_ok($$SELECT tenancy.manage_updated_at('public.notes', 'body')$$, '42804', NULL, 'column of the wrong type');
SELECT throws_ok($$SELECT tenancy.manage_updated_at('public.no_such_table')$$, '42P01', NULL, 'missing table');
CREATE TABLE public.wrong (id int, updated_at timestamptz);
INSERT INTO public.wrong VALUES (1, NULL);
CREATE TRIGGER after_trg AFTER UPDATE ON public.wrong FOR EACH ROW EXECUTE FUNCTION tenancy.set_updated_at();
SELECT throws_ok('UPDATE public.wrong SET id = 2', '39P01', NULL, 'fired AFTER: a clear trigger protocol error');
DROP TRIGGER after_trg ON public.wrong;
CREATE TRIGGER stmt_trg BEFORE UPDATE ON public.wrong FOR EACH STATEMENT EXECUTE FUNCTION tenancy.set_updated_at();
SELECT throws_ok('UPDATE public.wrong SET id = 2', '39P01', NULL, 'fired FOR EACH STATEMENT: a clear trigger protocol error');
DROP TRIGGER stmt_trg ON public.wrong;
CREATE TRIGGER col_trg BEFORE UPDATE ON public.wrong FOR EACH ROW EXECUTE FUNCTION tenancy.set_updated_at('missing');
SELECT throws_ok('UPDATE public.wrong SET id = 2', '42703', NULL, 'a column that was dropped or misnamed');
SELECT throws_ok('SELECT tenancy.set_updated_at()', '39P01', 'tenancy.set_updated_at() must be called as a trigger', 'not callable as a function');

SELECT * FROM finish();
ROLLBACK;
