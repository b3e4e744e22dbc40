-- Tenant API keys (src/api_keys/): the pepper their hashes are keyed with, the hashes, and when
-- each key was last used.  All three are in tenancy_private (sql/schema.sql): no application role
-- can reach them (no USAGE on the schema, RLS forced, no policy, no grant).

-- The HMAC key ("pepper") of the API-key hashes: 256 random bits made by the database on first
-- use, stored only wrapped under the active root key (like a data key), rewrapped by
-- tenancy.rotate_root_key().  A dump of the key hashes is useless for checking guesses offline
-- without the root keyring.
CREATE TABLE tenancy_private.peppers (
    purpose     text        NOT NULL CHECK (purpose IN ('api_keys')),
    root_key_id text        NOT NULL REFERENCES tenancy_private.root_keys (key_id),
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT peppers_pkey PRIMARY KEY (purpose)
);
CREATE INDEX peppers_root_key_idx ON tenancy_private.peppers (root_key_id);
ALTER TABLE tenancy_private.peppers ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.peppers FORCE ROW LEVEL SECURITY;
SELECT pg_catalog.pg_extension_config_dump('tenancy_private.peppers', '');

-- The keyed hash of each key's secret (src/api_keys/format.rs): HMAC-SHA-256 under the pepper of
-- the environment, tenant, key id and secret.  Written by create_api_key() and rotate_api_key()
-- with the key's row, deleted with it (cascade), never changed.
CREATE TABLE tenancy_private.api_key_hashes (
    tenant_id uuid  NOT NULL,
    key_id    uuid  NOT NULL,
    key_hash  bytea NOT NULL CHECK (length(key_hash) = 32),
    CONSTRAINT api_key_hashes_pkey PRIMARY KEY (tenant_id, key_id),
    CONSTRAINT api_key_hashes_key_fkey FOREIGN KEY (tenant_id, key_id)
        REFERENCES tenancy.api_keys (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE tenancy_private.api_key_hashes ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.api_key_hashes FORCE ROW LEVEL SECURITY;
SELECT pg_catalog.pg_extension_config_dump('tenancy_private.api_key_hashes', '');

-- Last use of each key, written by verification at most once a minute per key, never waiting for a
-- lock (a key whose row another transaction is writing is simply not recorded this time), and
-- not at all in read-only transactions or on a standby.  A separate table, so that recording use
-- never holds a lock on tenancy.api_keys that a revocation would wait for (the foreign key's
-- check takes KEY SHARE, which revoke and rotate, locking FOR NO KEY UPDATE, do not conflict with).
CREATE TABLE tenancy_private.api_key_usage (
    tenant_id    uuid        NOT NULL,
    key_id       uuid        NOT NULL,
    last_used_at timestamptz NOT NULL,
    CONSTRAINT api_key_usage_pkey PRIMARY KEY (tenant_id, key_id),
    CONSTRAINT api_key_usage_key_fkey FOREIGN KEY (tenant_id, key_id)
        REFERENCES tenancy.api_keys (tenant_id, id) ON DELETE CASCADE
);
ALTER TABLE tenancy_private.api_key_usage ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.api_key_usage FORCE ROW LEVEL SECURITY;
SELECT pg_catalog.pg_extension_config_dump('tenancy_private.api_key_usage', '');

-- The current tenant's keys, for owner/admin or service_role: everything but the hash.
CREATE FUNCTION tenancy.list_api_keys()
    RETURNS TABLE (id uuid, name text, prefix text, environment text, scopes text[], status text,
                   created_by uuid, created_at timestamptz, expires_at timestamptz,
                   revoked_at timestamptz, last_used_at timestamptz, replaced_by uuid)
    LANGUAGE plpgsql
    STABLE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- Tenant and role read once, together (one context per statement).
    tenant constant uuid := tenancy.current_tenant_for('owner', 'admin', 'service');
BEGIN
    IF tenant IS NULL THEN
        RAISE EXCEPTION 'permission denied for API keys: only a tenant''s owner or admin, or service_role, may list them'
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Enter the tenant first: tenancy.set_tenant() or tenancy.pre_request().';
    END IF;
    RETURN QUERY
    SELECT k.id, k.name, k.prefix, k.environment, k.scopes,
           CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
                WHEN k.expires_at IS NOT NULL AND k.expires_at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() THEN 'expired'
                ELSE 'active' END,
           k.created_by, k.created_at, k.expires_at, k.revoked_at, u.last_used_at, k.replaced_by
    FROM tenancy.api_keys k
    LEFT JOIN tenancy_private.api_key_usage u ON u.tenant_id OPERATOR(pg_catalog.=) k.tenant_id AND u.key_id OPERATOR(pg_catalog.=) k.id
    WHERE k.tenant_id OPERATOR(pg_catalog.=) tenant
    ORDER BY k.created_at, k.id;
END
$$;
COMMENT ON FUNCTION tenancy.list_api_keys() IS
    'The current tenant''s API keys (never their hashes), with status and last use; owner/admin or service_role';
