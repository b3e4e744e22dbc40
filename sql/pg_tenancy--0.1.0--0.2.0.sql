-- pg_tenancy 0.1.0 -> 0.2.0.  Hand-written; never edited once 0.2.0 is released
-- (sql/released.sha256, checked by pgrx-tests/tests/upgrade.rs).
--
-- 0.1.0 ran on PostgreSQL 15 only, so this script does too.  What changes:
--
-- 1. request_logs: the key (tenant_id, created_at, id) and the per-integration index move from the
--    partitioned parent to each partition.  With them on the parent, a pg_dump of a database with
--    daily partitions (which are not members of the extension) could not be restored: the dump's
--    ATTACH PARTITION built the partition's key from the parent's, and the partition's own
--    ADD CONSTRAINT then failed with "multiple primary keys".  The partitions' inherited indexes go
--    with the parent's; each partition then gets its own, named as maintenance names them.  This
--    takes an ACCESS EXCLUSIVE lock on request_logs and its partitions and builds two indexes per
--    partition: writes to request_logs wait for it.
-- 2. tenancy._seal_partition gives each new partition those two indexes.
-- 3. Every index a member can reach leads with tenant_id (sql/schema.sql, "index rule"): indexes
--    on user ids, Stripe ids, subscription plans and credential expiry alone let a member of one
--    tenant read those values of every tenant through EXPLAIN ANALYZE or pg_stat_xact_user_tables.
--    Dropped: users_subscription_idx, tenants_owner_user_id_idx, subscriptions_stripe_idx,
--    subscriptions_customer_idx, subscriptions_user_idx, jobs_user_idx (jobs_user_status_idx
--    covers it).  Rebuilt with tenant_id first: api_keys_created_by_idx,
--    integration_credentials_expiring_idx, subscription_audit_user_idx,
--    subscription_audit_stripe_idx, assets_user_idx.
-- 4. tenancy.index_exposures() lists such indexes on any tenant table (for service_role and
--    superusers); enable_tenant_isolation() warns about them on the table it isolates.
\echo Use "ALTER EXTENSION pg_tenancy UPDATE TO '0.2.0'" to load this file. \quit

ALTER TABLE tenancy.request_logs DROP CONSTRAINT request_logs_pkey;
DROP INDEX tenancy.request_logs_integration_idx;

ALTER TABLE tenancy.request_logs_default
    ADD CONSTRAINT request_logs_default_pkey PRIMARY KEY (tenant_id, created_at, id);
CREATE INDEX request_logs_default_integration_idx
    ON tenancy.request_logs_default (tenant_id, integration_id, created_at DESC);

DO $upgrade$
DECLARE
    part name;
BEGIN
    FOR part IN
        SELECT c.relname FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'tenancy.request_logs'::pg_catalog.regclass AND c.relname <> 'request_logs_default'
         ORDER BY 1
    LOOP
        EXECUTE pg_catalog.format('ALTER TABLE tenancy.%I ADD CONSTRAINT %I PRIMARY KEY (tenant_id, created_at, id)',
                                  part, part || '_pkey');
        EXECUTE pg_catalog.format('CREATE INDEX %I ON tenancy.%I (tenant_id, integration_id, created_at DESC)',
                                  part || '_integration_idx', part);
    END LOOP;
END
$upgrade$;

CREATE OR REPLACE FUNCTION tenancy._seal_partition(part text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE tenancy.%I ADD CONSTRAINT %I PRIMARY KEY (tenant_id, created_at, id)',
                   part, part || '_pkey');
    EXECUTE format('CREATE INDEX %I ON tenancy.%I (tenant_id, integration_id, created_at DESC)',
                   part || '_integration_idx', part);
    EXECUTE format('ALTER TABLE tenancy.%I ENABLE ROW LEVEL SECURITY', part);
    EXECUTE format('ALTER TABLE tenancy.%I FORCE ROW LEVEL SECURITY', part);
    EXECUTE format('REVOKE ALL ON tenancy.%I FROM PUBLIC, anon, authenticated, service_role', part);
END
$$;

-- 3. Indexes lead with tenant_id.
DROP INDEX tenancy.users_subscription_idx;
DROP INDEX tenancy.tenants_owner_user_id_idx;
DROP INDEX tenancy.subscriptions_stripe_idx;
DROP INDEX tenancy.subscriptions_customer_idx;
DROP INDEX tenancy.subscriptions_user_idx;
DROP INDEX tenancy.jobs_user_idx;
DROP INDEX tenancy.api_keys_created_by_idx;
CREATE INDEX api_keys_created_by_idx ON tenancy.api_keys (tenant_id, created_by);
DROP INDEX tenancy.integration_credentials_expiring_idx;
CREATE INDEX integration_credentials_expiring_idx ON tenancy.integration_credentials (tenant_id, expires_at)
    WHERE status = 'active' AND expires_at IS NOT NULL;
DROP INDEX tenancy.subscription_audit_user_idx;
CREATE INDEX subscription_audit_user_idx ON tenancy.subscription_audit (tenant_id, user_id);
DROP INDEX tenancy.subscription_audit_stripe_idx;
CREATE INDEX subscription_audit_stripe_idx ON tenancy.subscription_audit (tenant_id, stripe_event_id);
DROP INDEX tenancy.assets_user_idx;
CREATE INDEX assets_user_idx ON tenancy.assets (tenant_id, user_id);

-- 4. index_exposures(), and enable_tenant_isolation() warns.
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
REVOKE ALL ON FUNCTION tenancy.index_exposures() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.index_exposures() TO service_role;

CREATE OR REPLACE FUNCTION tenancy.enable_tenant_isolation(tbl regclass)
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
