-- Row Level Security: the one place where tenant policies are written.
--
-- Every tenant-owned table (ours, and users' tables through tenancy.enable_tenant_isolation) gets
-- ENABLE + FORCE ROW LEVEL SECURITY and, for each command, the roles of the tenant context that
-- may run it (docs/security.md has the whole matrix, sql/grants.sql the list per table):
--
--   tenancy_select   SELECT  TO authenticated  tenant_id = the tenant, for the readers' roles
--                                              [OR the row's user_id is the context's user]
--   tenancy_insert   INSERT  TO authenticated  tenant_id = the tenant, for the inserters' roles
--                                              [AND user_id is the context's user]
--   tenancy_update   UPDATE  TO authenticated  the same, before and after (a row cannot move)
--   tenancy_delete   DELETE  TO authenticated  the same
--   tenancy_service  ALL     TO service_role   everything (what service_role may do is decided
--                                              by its grants)
--
-- Policies only: the grants are written out where they are decided (sql/grants.sql, and
-- enable_tenant_isolation below).  A command no role may run gets no policy and no grant: a
-- 42501, not a silent 0 rows.  anon gets no policy, so it sees nothing.
--
-- One context per statement: each role-restricted condition is one call that reads tenant and
-- role together, (SELECT tenancy.current_tenant_for('owner', 'admin')), an InitPlan evaluated
-- once per statement; src/context/statements.rs refuses any change of the context while a
-- statement that read it is open.  No policy reads another table (fast, and what Citus requires).

CREATE FUNCTION tenancy._isolate(tbl regclass, readers text[], inserters text[], updaters text[],
                                 deleters text[], own_reads boolean DEFAULT false,
                                 own_inserts boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    every_role constant text[] := '{owner,admin,manager,member,client,api_key}';
    read_using text;
    pol        text;
    cmd        record;
    -- Each check is an InitPlan, (SELECT tenancy.f(...)), evaluated once per statement; but Citus
    -- refuses subqueries in policies, so with Citus in the database it is tenancy.f(...) (STABLE;
    -- still one context per statement: src/context/statements.rs).  tenancy.distribute() turns
    -- existing policies the same way (tenancy._citus_policies).
    o          text := CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN '' ELSE '(SELECT ' END;
    c          text := CASE WHEN o = '' THEN '' ELSE ')' END;
BEGIN
    IF EXISTS (SELECT FROM unnest(readers || inserters || updaters || deleters) r WHERE r IS NULL OR NOT r = ANY (every_role)) THEN
        RAISE EXCEPTION 'tenancy._isolate(): roles are owner, admin, manager, member, client, api_key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = tbl AND attname = 'tenant_id' AND atttypid = 'uuid'::regtype
                     AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'table % has no column tenant_id of type uuid', tbl
            USING ERRCODE = 'undefined_column',
                  HINT = 'Add "tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE" first.';
    END IF;

    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    FOREACH pol IN ARRAY ARRAY['tenancy_select', 'tenancy_insert', 'tenancy_update', 'tenancy_delete',
                               'tenancy_service', 'tenancy_service_select', 'tenancy_service_insert'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = tbl AND polname = pol) THEN
            EXECUTE format('DROP POLICY %I ON %s', pol, tbl);
        END IF;
    END LOOP;

    FOR cmd IN SELECT * FROM (VALUES ('select', readers), ('insert', inserters), ('update', updaters),
                                     ('delete', deleters)) AS c(name, roles)
               WHERE cardinality(c.roles) > 0 LOOP
        -- Every role of a tenant: the tenant alone (also a service context under authenticated).
        read_using := CASE WHEN every_role <@ cmd.roles
                           THEN format('tenant_id = %stenancy.current_tenant_id()%s', o, c)
                           ELSE format('tenant_id = %stenancy.current_tenant_for(VARIADIC %L::text[])%s', o, cmd.roles, c) END;
        CASE cmd.name
        WHEN 'select' THEN
            IF own_reads THEN
                read_using := format('(%s) OR user_id = %stenancy.current_user_id()%s', read_using, o, c);
            END IF;
            EXECUTE format('CREATE POLICY tenancy_select ON %s FOR SELECT TO authenticated USING (%s)', tbl, read_using);
        WHEN 'insert' THEN
            IF own_inserts THEN
                read_using := format('%s AND user_id IS NOT DISTINCT FROM %stenancy.current_user_id()%s', read_using, o, c);
            END IF;
            EXECUTE format('CREATE POLICY tenancy_insert ON %s FOR INSERT TO authenticated WITH CHECK (%s)', tbl, read_using);
        WHEN 'update' THEN
            EXECUTE format('CREATE POLICY tenancy_update ON %s FOR UPDATE TO authenticated USING (%s) WITH CHECK (%s)',
                           tbl, read_using, read_using);
        WHEN 'delete' THEN
            EXECUTE format('CREATE POLICY tenancy_delete ON %s FOR DELETE TO authenticated USING (%s)', tbl, read_using);
        END CASE;
    END LOOP;
    EXECUTE format('CREATE POLICY tenancy_service ON %s FOR ALL TO service_role USING (true) WITH CHECK (true)', tbl);
END
$$;

-- The index rule (sql/schema.sql; docs/security.md, "What RLS does not hide"), checked for any
-- table: on every table with row level security and a tenant_id column that authenticated can read
-- (directly or through its partitioned parent), and on tenancy.tenants and tenancy.users, the
-- indexes whose first key is a plain column other than the one the policy pins (tenant_id; id
-- for tenants and users) and whose operator family has a leakproof operator.  The
-- planner may run a member's condition on such an index before the policy, and EXPLAIN ANALYZE or
-- pg_stat_xact_user_tables then counts other tenants' rows.  Indexes on expressions are not
-- reported (an expression is safe when it calls a function that is not leakproof, like lower()).
CREATE FUNCTION tenancy.index_exposures()
    RETURNS TABLE (table_name regclass, index_name regclass, leading_column name)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.oid::regclass, i.indexrelid::regclass, a.attname
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indrelid
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
      JOIN pg_opclass opc ON opc.oid = i.indclass[0]
     WHERE c.relrowsecurity
       AND CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated')
                THEN has_any_column_privilege('authenticated', coalesce(pg_partition_root(c.oid), c.oid), 'SELECT')
           END
       AND a.attname <> CASE WHEN c.relnamespace = 'tenancy'::regnamespace AND c.relname IN ('tenants', 'users')
                             THEN 'id' ELSE 'tenant_id' END
       AND ((c.relnamespace = 'tenancy'::regnamespace AND c.relname IN ('tenants', 'users'))
            OR EXISTS (SELECT FROM pg_attribute t
                        WHERE t.attrelid = c.oid AND t.attname = 'tenant_id' AND NOT t.attisdropped))
       AND EXISTS (SELECT FROM pg_amop ao
                     JOIN pg_operator o ON o.oid = ao.amopopr
                     JOIN pg_proc p ON p.oid = o.oprcode
                    WHERE ao.amopfamily = opc.opcfamily AND p.proleakproof)
     ORDER BY 1, 2
$$;
COMMENT ON FUNCTION tenancy.index_exposures() IS
    'Indexes of tenant tables whose first column is not tenant_id: members could count other tenants'' rows through them';

-- Users' own tables join the model: the policies of the extension's ordinary tables (every role of
-- the tenant reads; owner, admin, manager, member and API keys write), and the grants that go with
-- them (authenticated: SELECT, INSERT, UPDATE, DELETE; service_role: ALL).  The caller must own
-- the table.
CREATE FUNCTION tenancy.enable_tenant_isolation(tbl regclass)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    exposed record;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tenancy.enable_tenant_isolation(): tbl must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM tenancy._isolate(tbl, '{owner,admin,manager,member,client,api_key}',
                             '{owner,admin,manager,member,api_key}', '{owner,admin,manager,member,api_key}',
                             '{owner,admin,manager,member,api_key}');
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO authenticated', tbl);
    EXECUTE format('GRANT ALL ON %s TO service_role', tbl);
    EXECUTE format('REVOKE ALL ON %s FROM anon', tbl);
    IF has_function_privilege('tenancy.index_exposures()', 'EXECUTE') THEN
        FOR exposed IN SELECT * FROM tenancy.index_exposures() e WHERE e.table_name = tbl LOOP
            RAISE WARNING 'index % leads with "%", not tenant_id', exposed.index_name, exposed.leading_column
                USING DETAIL = 'An index scan checks its own conditions before the policy: members can count, '
                               'and range by range read, other tenants'' values of this column '
                               '(EXPLAIN ANALYZE, pg_stat_xact_user_tables).',
                      HINT = format('Put tenant_id first: (tenant_id, %I, ...).', exposed.leading_column);
        END LOOP;
    END IF;
END
$$;
COMMENT ON FUNCTION tenancy.enable_tenant_isolation(regclass) IS
    'Apply pg_tenancy''s tenant isolation (FORCE RLS, per-command policies, grants) to a table with a tenant_id uuid column';
