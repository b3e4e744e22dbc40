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

-- Users' own tables join the model: same policies as the extension's "standard" tables, and the
-- grants that go with them (authenticated: SELECT, INSERT, UPDATE, DELETE; service_role: ALL).
-- The caller must own the table.
CREATE FUNCTION tenancy.enable_tenant_isolation(tbl regclass)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tenancy.enable_tenant_isolation(): tbl must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM tenancy._isolate(tbl, 'standard');
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO authenticated', tbl);
    EXECUTE format('GRANT ALL ON %s TO service_role', tbl);
    EXECUTE format('REVOKE ALL ON %s FROM anon', tbl);
END
$$;
COMMENT ON FUNCTION tenancy.enable_tenant_isolation(regclass) IS
    'Apply pg_tenancy''s tenant isolation (FORCE RLS, per-command policies, grants) to a table with a tenant_id uuid column';
