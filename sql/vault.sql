-- Credential vault (src/vault/): root key fingerprints, per-tenant data keys, and the credentials'
-- ciphertexts.
--
-- All three are in tenancy_private (sql/schema.sql): no application role can reach them (no USAGE
-- on the schema, RLS forced, no policy, no grant); only the extension's functions read them, in
-- Rust, after their own checks.  Data keys are stored wrapped
-- (AES-256-GCM under a root key, bound to tenant and version); their plaintext exists only in a
-- backend's memory while it encrypts or decrypts.

-- Every root key id this database has used, with a keyed fingerprint of the key: a server started
-- with another key under the same id says "wrong root key" instead of failing to decrypt.
CREATE TABLE tenancy_private.root_keys (
    key_id        text        NOT NULL CHECK (key_id ~ '^[A-Za-z0-9_.-]{1,64}$'),
    fingerprint   bytea       NOT NULL CHECK (length(fingerprint) = 16),
    first_used_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT root_keys_pkey PRIMARY KEY (key_id)
);

-- Per-tenant data keys.  The highest version is the one new ciphertexts use; older versions stay
-- until tenancy.rotate_tenant_key() has re-encrypted what they encrypted.  Deleting a tenant's rows
-- here is crypto-shredding: its ciphertexts can never be read again.
CREATE TABLE tenancy_private.data_keys (
    tenant_id   uuid        NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    version     integer     NOT NULL CHECK (version > 0),
    root_key_id text        NOT NULL REFERENCES tenancy_private.root_keys (key_id),
    wrapped_key bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT data_keys_pkey PRIMARY KEY (tenant_id, version)
);
CREATE INDEX data_keys_root_key_idx ON tenancy_private.data_keys (root_key_id);

-- The secrets of tenancy.integration_credentials, one row per credential, written with it by
-- tenancy.store_credential() and deleted with it (cascade).  Each ciphertext is AES-256-GCM under
-- the tenant's data key, its associated data the tenant, the credential's id and the column's
-- name (src/vault/aead.rs): moved to another row, tenant or column it no longer decrypts.
CREATE TABLE tenancy_private.credential_secrets (
    tenant_id               uuid  NOT NULL,
    credential_id           uuid  NOT NULL,
    encrypted_data          bytea NOT NULL,
    encrypted_refresh_token bytea,
    CONSTRAINT credential_secrets_pkey PRIMARY KEY (tenant_id, credential_id),
    CONSTRAINT credential_secrets_credential_fkey FOREIGN KEY (tenant_id, credential_id)
        REFERENCES tenancy.integration_credentials (tenant_id, id) ON DELETE CASCADE
);

-- Backends cache unwrapped data keys: sql/caches.sql puts the invalidation trigger on both tables.
ALTER TABLE tenancy_private.root_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.root_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.data_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.credential_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.credential_secrets FORCE ROW LEVEL SECURITY;

SELECT pg_catalog.pg_extension_config_dump('tenancy_private.root_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy_private.data_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy_private.credential_secrets', '');

-- For a token-refresh worker: active credentials that expire within `within`, soonest first
-- (the partial index integration_credentials_expiring_idx).  Runs as the caller: service_role sees
-- every tenant's, a tenant's owner/admin their own.  No secret is returned.
CREATE FUNCTION tenancy.credentials_expiring(within interval)
    RETURNS TABLE (tenant_id uuid, id uuid, integration_id uuid, credential_type tenancy.credential_type, expires_at timestamptz)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT c.tenant_id, c.id, c.integration_id, c.credential_type, c.expires_at
    FROM tenancy.integration_credentials c
    WHERE c.status = 'active' AND c.expires_at IS NOT NULL AND c.expires_at < now() + within
    ORDER BY c.expires_at
$$;
COMMENT ON FUNCTION tenancy.credentials_expiring(interval) IS
    'Active credentials expiring within the interval (no secrets), for a token-refresh worker';

-- tenancy.rotate_root_key(), tenancy.rotate_tenant_key(), tenancy.shred_tenant() and
-- tenancy.root_key_usage() are in Rust: src/vault/lifecycle.rs.
