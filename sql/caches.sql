-- Per-backend caches (src/invalidation.rs): every table whose rows a backend caches carries these
-- triggers, so that any write to it empties the caches of every backend before their next
-- transaction.  A table added to a cache must be added here (and to src/invalidation.rs).
CREATE FUNCTION tenancy.invalidate_caches() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'invalidate_caches';
COMMENT ON FUNCTION tenancy.invalidate_caches() IS
    'Trigger: drop every backend''s cached copies (memberships, data keys, root key checks, pepper, API keys, actions'' field mapping lists) when the table changes';

DO $$
DECLARE
    t text;
BEGIN
    -- For each row actually written (a statement that changes nothing invalidates nothing: no
    -- member can make every backend drop its caches with UPDATE ... WHERE false), and for
    -- TRUNCATE.  ALWAYS: also under session_replication_role = replica, so a change that logical
    -- replication applies reaches the caches too.
    FOREACH t IN ARRAY ARRAY['tenancy.tenants', 'tenancy.memberships', 'tenancy_private.data_keys',
                              'tenancy_private.root_keys', 'tenancy_private.peppers', 'tenancy.api_keys',
                              'tenancy_private.api_key_hashes', 'tenancy.actions', 'tenancy.field_mappings'] LOOP
        EXECUTE format('CREATE TRIGGER tenancy_invalidate_caches AFTER INSERT OR UPDATE OR DELETE ON %s
                        FOR EACH ROW EXECUTE FUNCTION tenancy.invalidate_caches()', t);
        EXECUTE format('CREATE TRIGGER tenancy_invalidate_caches_truncate AFTER TRUNCATE ON %s
                        FOR EACH STATEMENT EXECUTE FUNCTION tenancy.invalidate_caches()', t);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER tenancy_invalidate_caches', t);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER tenancy_invalidate_caches_truncate', t);
    END LOOP;
END
$$;
