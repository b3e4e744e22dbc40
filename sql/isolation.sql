-- Row Level Security: the one place where tenant policies are written.
--
-- Every tenant-owned table (ours, and users' tables through tenancy.enable_tenant_isolation) gets
-- ENABLE + FORCE ROW LEVEL SECURITY and these per-command policies:
--
--   tenancy_select   SELECT  TO authenticated  tenant_id = current tenant [AND role may read]
--   tenancy_insert   INSERT  TO authenticated  tenant_id = current tenant AND role may write
--   tenancy_update   UPDATE  TO authenticated  same, before and after (a row cannot change tenant)
--   tenancy_delete   DELETE  TO authenticated  same
--   tenancy_service  ALL     TO service_role   everything (append-only tables: SELECT and INSERT)
--
-- anon gets no policy, so it sees nothing even where it has a grant.  Policies are plain
-- comparisons with the context readers wrapped in (SELECT ...), so the planner evaluates each once
-- per statement (an InitPlan), and no policy reads another table (fast, and what Citus requires).
--
-- Kinds:
--   standard     every member reads; owner, admin, manager, member and API keys write (client
--                reads only; scopes are for the application's own policies: tenancy.has_scope)
--   sensitive    only owner and admin read or write (api_keys, integration_credentials)
--   members      memberships: every member reads the tenant's members, and every user reads their
--                own memberships in any tenant (to choose a tenant); owner and admin write
--   append_only  every member reads, writers insert, nobody updates or deletes (request_logs,
--                subscription_audit); service_role may SELECT and INSERT only

CREATE FUNCTION tenancy._isolate(tbl regclass, kind text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    tenant_match constant text := 'tenant_id = (SELECT tenancy.current_tenant_id())';
    writers      constant text := '(SELECT tenancy.current_role()) = ANY (''{owner,admin,manager,member,api_key}''::text[])';
    admins       constant text := '(SELECT tenancy.current_role()) = ANY (''{owner,admin}''::text[])';
    read_using   text;
    write_check  text;
    pol          text;
BEGIN
    IF kind NOT IN ('standard', 'sensitive', 'members', 'append_only') THEN
        RAISE EXCEPTION 'tenancy._isolate(): unknown kind "%"', kind USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = tbl AND attname = 'tenant_id' AND atttypid = 'uuid'::regtype
                     AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'table % has no column tenant_id of type uuid', tbl
            USING ERRCODE = 'undefined_column',
                  HINT = 'Add "tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE" first.';
    END IF;

    read_using := CASE kind
        WHEN 'sensitive' THEN tenant_match || ' AND ' || admins
        WHEN 'members'   THEN '(' || tenant_match || ') OR user_id = (SELECT tenancy.current_user_id())'
        ELSE tenant_match
    END;
    write_check := tenant_match || ' AND ' || CASE WHEN kind IN ('sensitive', 'members') THEN admins ELSE writers END;

    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    FOREACH pol IN ARRAY ARRAY['tenancy_select', 'tenancy_insert', 'tenancy_update', 'tenancy_delete',
                               'tenancy_service', 'tenancy_service_select', 'tenancy_service_insert'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = tbl AND polname = pol) THEN
            EXECUTE format('DROP POLICY %I ON %s', pol, tbl);
        END IF;
    END LOOP;

    EXECUTE format('CREATE POLICY tenancy_select ON %s AS PERMISSIVE FOR SELECT TO authenticated USING (%s)', tbl, read_using);
    EXECUTE format('CREATE POLICY tenancy_insert ON %s AS PERMISSIVE FOR INSERT TO authenticated WITH CHECK (%s)', tbl, write_check);
    IF kind = 'append_only' THEN
        EXECUTE format('CREATE POLICY tenancy_service_select ON %s FOR SELECT TO service_role USING (true)', tbl);
        EXECUTE format('CREATE POLICY tenancy_service_insert ON %s FOR INSERT TO service_role WITH CHECK (true)', tbl);
    ELSE
        EXECUTE format('CREATE POLICY tenancy_update ON %s AS PERMISSIVE FOR UPDATE TO authenticated USING (%s) WITH CHECK (%s)',
                       tbl, write_check, write_check);
        EXECUTE format('CREATE POLICY tenancy_delete ON %s AS PERMISSIVE FOR DELETE TO authenticated USING (%s)', tbl, write_check);
        EXECUTE format('CREATE POLICY tenancy_service ON %s FOR ALL TO service_role USING (true) WITH CHECK (true)', tbl);
    END IF;
END
$$;

-- The index rule (sql/schema.sql, README "What RLS does not hide"), checked for any table: on
-- every table with row level security and a tenant_id column that authenticated can read
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

-- Users' own tables join the model: same policies as the extension's "standard" tables, and the
-- grants that go with them (authenticated: SELECT, INSERT, UPDATE, DELETE; service_role: ALL).
-- The caller must own the table.
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
    PERFORM tenancy._isolate(tbl, 'standard');
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
