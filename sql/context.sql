-- Tenant context (src/context.rs): keep every backend's membership cache true to the tables.
-- tenancy.invalidate_caches() (src/lookup.rs) also guards the vault's data-key cache (sql/vault.sql).
CREATE FUNCTION tenancy.invalidate_caches() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'invalidate_caches';
COMMENT ON FUNCTION tenancy.invalidate_caches() IS
    'Statement trigger: drop every backend''s cached copies (memberships, data keys) when the table changes';

CREATE TRIGGER tenancy_context_cache
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.invalidate_caches();
CREATE TRIGGER tenancy_context_cache
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.memberships
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.invalidate_caches();
