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
