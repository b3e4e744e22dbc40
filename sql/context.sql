-- Tenant context (src/context.rs): keep every backend's membership cache true to the tables.
CREATE FUNCTION tenancy.invalidate_context_cache() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'invalidate_context_cache';
COMMENT ON FUNCTION tenancy.invalidate_context_cache() IS
    'Statement trigger: drop every backend''s cached tenant memberships when tenants or memberships change';

CREATE TRIGGER tenancy_context_cache
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.invalidate_context_cache();
CREATE TRIGGER tenancy_context_cache
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.memberships
    FOR EACH STATEMENT EXECUTE FUNCTION tenancy.invalidate_context_cache();
