-- Finalize: RLS on every table, grants, and EXECUTE revoked from PUBLIC.  Runs last, after every
-- Rust-generated function exists.

-- ---------------------------------------------------------------------------------------------
-- Tenant-owned tables (policies written in sql/isolation.sql)
-- ---------------------------------------------------------------------------------------------
SELECT tenancy._isolate(('tenancy.' || t.name)::regclass, t.kind)
FROM (VALUES
    ('memberships', 'members'),
    ('api_keys', 'sensitive'),
    ('clients', 'standard'),
    ('client_users', 'standard'),
    ('projects', 'standard'),
    ('integrations', 'standard'),
    ('actions', 'standard'),
    ('integration_credentials', 'sensitive'),
    ('field_mappings', 'standard'),
    ('request_logs', 'append_only'),
    ('subscriptions', 'standard'),
    ('subscription_audit', 'append_only'),
    ('jobs', 'standard'),
    ('assets', 'standard')
) AS t(name, kind);

-- ---------------------------------------------------------------------------------------------
-- Global tables
-- ---------------------------------------------------------------------------------------------
ALTER TABLE tenancy.tenants ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy.tenants FORCE ROW LEVEL SECURITY;
-- A member sees the current tenant; owner and admin may rename it or change its settings
-- (column grants below), never its status, slug or owner.
CREATE POLICY tenancy_select ON tenancy.tenants FOR SELECT TO authenticated
    USING (id = (SELECT tenancy.current_tenant_id()));
CREATE POLICY tenancy_update ON tenancy.tenants FOR UPDATE TO authenticated
    USING (id = (SELECT tenancy.current_tenant_id())
           AND (SELECT tenancy.current_role()) = ANY ('{owner,admin}'::text[]))
    WITH CHECK (id = (SELECT tenancy.current_tenant_id()));
CREATE POLICY tenancy_service ON tenancy.tenants FOR ALL TO service_role USING (true) WITH CHECK (true);

ALTER TABLE tenancy.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy.users FORCE ROW LEVEL SECURITY;
-- A user sees and edits their own profile (name, avatar_url).
CREATE POLICY tenancy_select ON tenancy.users FOR SELECT TO authenticated
    USING (id = (SELECT tenancy.current_user_id()));
CREATE POLICY tenancy_update ON tenancy.users FOR UPDATE TO authenticated
    USING (id = (SELECT tenancy.current_user_id()))
    WITH CHECK (id = (SELECT tenancy.current_user_id()));
CREATE POLICY tenancy_service ON tenancy.users FOR ALL TO service_role USING (true) WITH CHECK (true);

-- Partitions are read and written through their parent only: RLS forced, no policy, no grant.
ALTER TABLE tenancy.request_logs_default ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy.request_logs_default FORCE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------
-- Grants.  anon: the schema and the context functions only (PostgREST calls pre_request for
-- every request); no table.  Column-level UPDATE grants keep tenant_id-like columns and status
-- out of reach where the policies alone would allow more.
-- ---------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA tenancy TO anon, authenticated, service_role;

GRANT SELECT, INSERT, UPDATE, DELETE ON
    tenancy.memberships, tenancy.clients, tenancy.client_users, tenancy.projects,
    tenancy.integrations, tenancy.actions, tenancy.integration_credentials, tenancy.field_mappings,
    tenancy.subscriptions, tenancy.jobs, tenancy.assets
    TO authenticated, service_role;
GRANT SELECT, INSERT ON tenancy.request_logs, tenancy.subscription_audit TO authenticated, service_role;
-- API keys are made, revoked and rotated by their functions only (src/api_keys.rs); the hash is
-- no one's to read.  Owner/admin (RLS) may rename or delete a key.
GRANT SELECT (tenant_id, id, name, prefix, environment, scopes, expires_at, revoked_at, replaced_by,
              created_by, created_at, updated_at),
      UPDATE (name), DELETE
    ON tenancy.api_keys TO authenticated, service_role;
GRANT SELECT ON tenancy.tenants, tenancy.users TO authenticated;
GRANT UPDATE (name, email, settings) ON tenancy.tenants TO authenticated;
GRANT UPDATE (name, avatar_url) ON tenancy.users TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenancy.tenants, tenancy.users TO service_role;

-- ---------------------------------------------------------------------------------------------
-- Functions: nothing for PUBLIC; each role gets what it needs.
-- ---------------------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenancy FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    tenancy.current_tenant_id(), tenancy.current_user_id(), tenancy.current_role(), tenancy.pre_request(),
    tenancy.current_api_key_id(), tenancy.has_scope(text)
    TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION tenancy.set_tenant(uuid, uuid), tenancy.clear_context()
    TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION tenancy.health(boolean), tenancy.library_info(), tenancy.index_exposures() TO service_role;
GRANT EXECUTE ON FUNCTION
    tenancy.store_credential(uuid, text, jsonb, text, timestamptz, text[]),
    tenancy.read_credential(uuid),
    tenancy.update_credential(uuid, jsonb, text, timestamptz, text[], text, boolean),
    tenancy.credentials_expiring(interval)
    TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION tenancy.shred_tenant(uuid), tenancy.rotate_tenant_key(uuid, integer) TO service_role;
GRANT EXECUTE ON FUNCTION
    tenancy.create_api_key(text, text[], timestamptz, text),
    tenancy.revoke_api_key(uuid),
    tenancy.rotate_api_key(uuid, interval),
    tenancy.list_api_keys(),
    tenancy.verify_api_key(text),
    tenancy.authenticate(text)
    TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION
    tenancy.log_request(uuid, uuid, jsonb, jsonb, integer, integer, integer, jsonb),
    tenancy.redact(jsonb),
    tenancy.request_stats(timestamptz, timestamptz)
    TO authenticated, service_role;
-- Superuser only (no grant; grant it to a maintenance role if you have one):
-- tenancy.maintain_request_logs(interval, integer, timestamptz).
-- Superuser only (no grant): tenancy.rotate_root_key(integer), tenancy.root_key_usage(),
-- tenancy.generate_root_key(text).
