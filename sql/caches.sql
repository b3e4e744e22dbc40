-- Per-backend caches (src/lookup.rs): every table whose rows a backend caches carries this statement
-- trigger, so that any write to it empties the caches of every backend before their next
-- transaction.  A table added to a cache must be added here.
CREATE FUNCTION tenancy.invalidate_caches() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'invalidate_caches';
COMMENT ON FUNCTION tenancy.invalidate_caches() IS
    'Statement trigger: drop every backend''s cached copies (memberships, data keys, root key checks, pepper, API keys) when the table changes';

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['tenants', 'memberships', 'data_keys', 'root_keys', 'peppers', 'api_keys'] LOOP
        EXECUTE format('CREATE TRIGGER tenancy_invalidate_caches AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.%I
                        FOR EACH STATEMENT EXECUTE FUNCTION tenancy.invalidate_caches()', t);
    END LOOP;
END
$$;
