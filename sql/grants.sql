-- Finalize: RLS on every table, grants, and EXECUTE revoked from PUBLIC.  Runs last, after every
-- Rust-generated function exists.

-- ---------------------------------------------------------------------------------------------
-- Tenant-owned tables: who may do what, as roles of the tenant context (policies: sql/isolation.sql;
-- the whole matrix, with every role and its reasons: docs/security.md).  A command with no roles
-- here is done through the extension's functions only, or by service_role.
-- ---------------------------------------------------------------------------------------------
SELECT tenancy._isolate(('tenancy.' || t.name)::regclass, t.readers, t.inserters, t.updaters, t.deleters, t.own_reads, t.own_inserts)
FROM (VALUES
    -- name                     readers                                        inserters                            updaters                             deleters                             own_reads own_inserts
    ('memberships',             '{owner,admin,manager,member}'::text[],       '{}'::text[],                        '{}'::text[],                        '{}'::text[], true,  false),
    ('api_keys',                '{owner,admin}',                              '{}',                                '{owner,admin}',                     '{owner,admin}', false, false),
    ('clients',                 '{owner,admin,manager,member,client,api_key}', '{owner,admin,manager,member,api_key}', '{owner,admin,manager,member,api_key}', '{owner,admin,manager,member,api_key}', false, false),
    ('client_users',            '{owner,admin,manager,member,client,api_key}', '{owner,admin,manager}',             '{}',                                '{owner,admin,manager}', false, false),
    ('projects',                '{owner,admin,manager,member,client,api_key}', '{owner,admin,manager,member,api_key}', '{owner,admin,manager,member,api_key}', '{owner,admin,manager,member,api_key}', false, false),
    ('integrations',            '{owner,admin,manager,member,api_key}',       '{owner,admin}',                     '{owner,admin}',                     '{owner,admin}', false, false),
    ('actions',                 '{owner,admin,manager,member,api_key}',       '{owner,admin}',                     '{owner,admin}',                     '{owner,admin}', false, false),
    ('integration_credentials', '{owner,admin}',                              '{}',                                '{}',                                '{owner,admin}', false, false),
    ('field_mappings',          '{owner,admin,manager,member,api_key}',       '{owner,admin}',                     '{owner,admin}',                     '{owner,admin}', false, false),
    ('request_logs',            '{owner,admin,manager,member,api_key}',       '{}',                                '{}',                                '{}', false, false),
    ('subscriptions',           '{owner,admin}',                              '{}',                                '{}',                                '{}', false, false),
    ('subscription_audit',      '{owner,admin}',                              '{}',                                '{}',                                '{}', false, false),
    ('jobs',                    '{owner,admin,manager,member,client,api_key}', '{owner,admin,manager,member,api_key}', '{}',                                '{}', false, true),
    ('assets',                  '{owner,admin,manager,member,client,api_key}', '{}',                                '{}',                                '{}', false, false)
) AS t(name, readers, inserters, updaters, deleters, own_reads, own_inserts);

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
    USING (id = (SELECT tenancy.current_tenant_for('owner', 'admin')))
    WITH CHECK (id = (SELECT tenancy.current_tenant_for('owner', 'admin')));
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
ALTER TABLE tenancy_private.request_logs_default ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.request_logs_default FORCE ROW LEVEL SECURITY;

-- Privileges are exactly those granted below, whatever default privileges (ALTER DEFAULT
-- PRIVILEGES) the role that runs this script has: every grant to anyone but the owner on the
-- extension's tables, sequences, functions and schemas goes first (a default grant of TRUNCATE on
-- tenancy_private.data_keys would let a role destroy every tenant's keys: TRUNCATE ignores RLS),
-- and on their types every grant but the owner's and PUBLIC's.
DO $acl$
DECLARE
    o record;
BEGIN
    FOR o IN
        WITH members AS (
            SELECT d.classid, d.objid FROM pg_catalog.pg_depend d
             WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e'
               AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'pg_tenancy'))
        SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || c.oid::regclass::text AS obj, a.grantee
          FROM members m JOIN pg_catalog.pg_class c ON m.classid = 'pg_catalog.pg_class'::regclass AND c.oid = m.objid,
               pg_catalog.aclexplode(c.relacl) a
         WHERE a.grantee <> c.relowner
        UNION
        SELECT 'FUNCTION ' || p.oid::regprocedure::text, a.grantee
          FROM members m JOIN pg_catalog.pg_proc p ON m.classid = 'pg_catalog.pg_proc'::regclass AND p.oid = m.objid,
               pg_catalog.aclexplode(p.proacl) a
         WHERE a.grantee <> p.proowner
        UNION
        SELECT 'SCHEMA ' || pg_catalog.quote_ident(n.nspname), a.grantee
          FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
         WHERE n.nspname IN ('tenancy', 'tenancy_private') AND a.grantee <> n.nspowner
        UNION
        SELECT 'TYPE ' || t.oid::regtype::text, a.grantee
          FROM pg_catalog.pg_type t, pg_catalog.aclexplode(t.typacl) a
         WHERE t.typnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
           AND a.grantee NOT IN (t.typowner, 0)
    LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON %s FROM %s', o.obj,
            CASE WHEN o.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(o.grantee)) END);
    END LOOP;
END
$acl$;

-- The enums, the domain and verify_api_key's result type are for every role, whatever default
-- privileges the installing role has (ALTER DEFAULT PRIVILEGES ... REVOKE USAGE ON TYPES).
GRANT USAGE ON TYPE tenancy.tenant_status, tenancy.member_role, tenancy.auth_type, tenancy.integration_status,
    tenancy.credential_type, tenancy.credential_status, tenancy.http_method, tenancy.mapping_direction,
    tenancy.slug, tenancy.verified_api_key TO PUBLIC;

-- Row types no application role names: a temporary table of such a type would depend on the table
-- and stop its partitions from being dropped (maintenance) or the table from being changed.
-- (The other tables' row types stay usable: PostgREST names them, json_populate_recordset.)
-- (tenancy_private's row types are out of reach anyway: no role has USAGE on the schema.)
REVOKE USAGE ON TYPE tenancy.request_logs, tenancy_private.request_logs_default, tenancy_private.root_keys,
    tenancy_private.data_keys, tenancy_private.peppers, tenancy_private.api_key_usage,
    tenancy_private.api_key_hashes, tenancy_private.credential_secrets FROM PUBLIC;

-- ---------------------------------------------------------------------------------------------
-- Grants.  anon: the schema and the context functions only (PostgREST calls pre_request for
-- every request); no table.  Column-level UPDATE grants keep tenant_id-like columns and status
-- out of reach where the policies alone would allow more.
-- ---------------------------------------------------------------------------------------------
GRANT USAGE ON SCHEMA tenancy TO anon, authenticated, service_role;

-- authenticated: what the table above lets some role do, table by table.  One door: rows that
-- only a function may write (memberships, API keys, credentials, request logs) get no INSERT,
-- UPDATE or DELETE; billing, jobs' progress and assets are written by the service (Phase 04).
GRANT SELECT ON
    tenancy.memberships, tenancy.clients, tenancy.client_users, tenancy.projects, tenancy.integrations,
    tenancy.actions, tenancy.field_mappings, tenancy.request_logs, tenancy.subscriptions,
    tenancy.subscription_audit, tenancy.jobs, tenancy.assets
    TO authenticated;
GRANT INSERT, UPDATE, DELETE ON
    tenancy.clients, tenancy.projects, tenancy.integrations, tenancy.actions, tenancy.field_mappings
    TO authenticated;
GRANT INSERT, DELETE ON tenancy.client_users TO authenticated;
-- A job is created queued: its status, progress, result and times are the service's workers' to set.
GRANT INSERT (tenant_id, id, user_id, job_type, parameters) ON tenancy.jobs TO authenticated;
-- API keys are made, revoked and rotated by their functions only (src/api_keys/); their hashes are
-- in tenancy_private.  Owner/admin (RLS) may rename or delete a key.
GRANT SELECT (tenant_id, id, name, prefix, environment, scopes, expires_at, revoked_at, replaced_by,
              created_by, created_at, updated_at),
      UPDATE (name), DELETE
    ON tenancy.api_keys TO authenticated, service_role;
-- Credentials are written and read by the vault's functions only (src/vault/): no plaintext and no
-- ciphertext of anyone's choosing gets in, and the ciphertexts (tenancy_private) are no one's to
-- read.  Owner/admin (RLS) may delete one.
GRANT SELECT (tenant_id, id, integration_id, credential_type, expires_at, scopes, status, created_at, updated_at),
      DELETE
    ON tenancy.integration_credentials TO authenticated, service_role;
GRANT SELECT ON tenancy.tenants, tenancy.users TO authenticated;
-- Not email: it is unique across tenants (the seeds), so an owner could claim another tenant's
-- address, or make it wait behind an uncommitted claim; the service sets it.
GRANT UPDATE (name, settings) ON tenancy.tenants TO authenticated;
GRANT UPDATE (name, avatar_url) ON tenancy.users TO authenticated;

-- service_role: everything, except the rows that have a function as their door.
GRANT SELECT, INSERT, UPDATE, DELETE ON
    tenancy.tenants, tenancy.users, tenancy.memberships, tenancy.clients, tenancy.client_users,
    tenancy.projects, tenancy.integrations, tenancy.actions, tenancy.field_mappings,
    tenancy.subscriptions, tenancy.jobs, tenancy.assets
    TO service_role;
GRANT SELECT, INSERT ON tenancy.subscription_audit TO service_role;
GRANT SELECT ON tenancy.request_logs TO service_role;

-- ---------------------------------------------------------------------------------------------
-- Functions: nothing for PUBLIC; each role gets what it needs.
-- ---------------------------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenancy FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    tenancy.current_tenant_id(), tenancy.current_user_id(), tenancy.current_role(), tenancy.pre_request(),
    tenancy.current_api_key_id(), tenancy.has_scope(text), tenancy.current_tenant_for(text[])
    TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION
    tenancy.add_member(uuid, text), tenancy.set_member_role(uuid, text), tenancy.remove_member(uuid)
    TO authenticated, service_role;
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
    tenancy.redact(jsonb, boolean),
    tenancy.redaction_rules(),
    tenancy.request_stats(timestamptz, timestamptz)
    TO authenticated, service_role;
-- JSON Schema (src/actions/): the pure functions for every role; the actions' checks for the
-- roles that read actions; the CHECK constraint's function for the roles that write them.
GRANT EXECUTE ON FUNCTION
    tenancy.jsonschema_is_valid(jsonb), tenancy.jsonb_matches_schema(jsonb, jsonb),
    tenancy.jsonschema_validation_errors(jsonb, jsonb)
    TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION
    tenancy.validate_action_input(uuid, jsonb), tenancy.check_action_input(uuid, jsonb),
    tenancy.validate_action_output(uuid, jsonb), tenancy.check_action_output(uuid, jsonb),
    tenancy.apply_field_mappings(uuid, tenancy.mapping_direction, jsonb),
    tenancy._jsonschema_check(jsonb, text), tenancy._field_mapping_check(text, text, jsonb)
    TO authenticated, service_role;
-- Superuser only (no grant; grant it to a maintenance role if you have one):
-- tenancy.maintain_request_logs(interval, integer, timestamptz).
-- Superuser only (no grant): tenancy.rotate_root_key(integer), tenancy.root_key_usage(),
-- tenancy.generate_root_key(text), tenancy.jwt_keys(text).

