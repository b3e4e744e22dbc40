-- pg_tenancy: the data model (bootstrap: runs before any Rust-generated SQL).
--
-- Rules every table follows (see docs/data-model.md):
--   * Global tables: tenants, users.  Every other table is tenant-owned.
--   * Tenant-owned tables have tenant_id uuid NOT NULL, PRIMARY KEY (tenant_id, id), every UNIQUE
--     constraint includes tenant_id, and every foreign key to another tenant-owned table is
--     composite: (tenant_id, x_id) REFERENCES tenancy.x (tenant_id, id).  A row can therefore never
--     reference a row of another tenant, whatever the policies say.  This is also what Citus needs
--     to distribute the tables by tenant_id.
--   * Every table is registered with pg_extension_config_dump so that pg_dump keeps its rows.
--   * Every index that a tenant's member can reach leads with the column its policy pins
--     (tenant_id; id for tenants and users).  An index scan checks its own conditions before the
--     policy's filter, and comparison operators are leakproof, so the planner may run a member's
--     "WHERE user_id < $1" on an index of (user_id) ahead of "tenant_id = current tenant": every
--     row of every tenant in that range is then fetched and thrown away, and EXPLAIN ANALYZE
--     ("Rows Removed by Filter") or pg_stat_xact_user_tables (idx_tup_fetch) counts them.  Range
--     after range, that reads the column's values out of other tenants.  With tenant_id first the
--     scan never leaves the member's tenant.  Two exceptions, on purpose (docs/security.md,
--     "What RLS does not hide"): tenants_slug_key (slugs are unique across tenants) and
--     memberships_user_id_idx (a user reads their own memberships in every tenant).  Indexes on lower(email) are safe:
--     lower() is not leakproof, so it always runs after the policy.

-- ---------------------------------------------------------------------------------------------
-- Roles.  The Supabase/PostgREST names; created NOLOGIN when absent, never altered when present.
-- Roles are cluster-wide: DROP EXTENSION leaves them in place.
-- ---------------------------------------------------------------------------------------------
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END
$roles$;

-- ---------------------------------------------------------------------------------------------
-- The private schema.  `tenancy` is what applications use, and what PostgREST or Supabase expose
-- (db-schemas) and code generators read.  What only the extension's functions touch lives in
-- `tenancy_private`: the vault's root key fingerprints and data keys, the API-key pepper, hashes
-- and usage, the credentials' ciphertexts, and request_logs' partitions.  No role but the extension's owner has USAGE on it,
-- so no application role can read, lock, name a type of, or even list its tables' columns
-- through information_schema; every table there also has RLS forced and no policy.
-- ---------------------------------------------------------------------------------------------
CREATE SCHEMA tenancy_private;
REVOKE ALL ON SCHEMA tenancy_private FROM PUBLIC;
COMMENT ON SCHEMA tenancy_private IS
    'pg_tenancy internals and secret material (keys, hashes, ciphertexts): reached only through the extension''s functions';

-- ---------------------------------------------------------------------------------------------
-- Enums (Waygate spec, memberships).  The Phase 04 value lists stay CHECK constraints, as the
-- seed has them: they change with pricing, and a CHECK is easier to change than an enum.
-- ---------------------------------------------------------------------------------------------
CREATE TYPE tenancy.tenant_status AS ENUM ('active', 'suspended', 'archived');
CREATE TYPE tenancy.member_role AS ENUM ('owner', 'admin', 'manager', 'member', 'client');
CREATE TYPE tenancy.auth_type AS ENUM ('oauth2', 'api_key', 'basic', 'bearer', 'custom_header');
CREATE TYPE tenancy.integration_status AS ENUM ('draft', 'active', 'error', 'disabled');
CREATE TYPE tenancy.credential_type AS ENUM ('oauth2_tokens', 'api_key', 'basic', 'bearer');
CREATE TYPE tenancy.credential_status AS ENUM ('active', 'expired', 'revoked', 'needs_reauth');
CREATE TYPE tenancy.http_method AS ENUM ('GET', 'POST', 'PUT', 'PATCH', 'DELETE');
CREATE TYPE tenancy.mapping_direction AS ENUM ('input', 'output');

-- A slug: lower-case letters, digits and single hyphens, 1-63 characters, no leading/trailing
-- hyphen.  The extension's own columns (tenants, integrations, actions) are text with this CHECK
-- written out, not of the domain: code generators (drizzle-kit pull, among others) cannot map a
-- domain to a type, and the schema `tenancy` is the one applications and their generators read.
-- The domain stays, for users' own tables.
CREATE DOMAIN tenancy.slug AS text
    CHECK (VALUE ~ '^[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,62}$');

-- ---------------------------------------------------------------------------------------------
-- Global tables
-- ---------------------------------------------------------------------------------------------

-- users: one row per person (User of every seed).  When Supabase's auth.users exists, its rows are
-- mirrored here with the same id (see sql/supabase.sql).
CREATE TABLE tenancy.users (
    id                  uuid        NOT NULL DEFAULT gen_random_uuid(),
    email               text        NOT NULL CHECK (length(email) BETWEEN 3 AND 320 AND email LIKE '%_@_%'),
    name                text        CHECK (length(name) <= 255),
    avatar_url          text,
    subscription_tier   text        NOT NULL DEFAULT 'free'
                                    CHECK (subscription_tier IN ('free', 'pro', 'studio', 'enterprise')),
    subscription_status text        CHECK (subscription_status IN ('active', 'past_due', 'canceled', 'incomplete', 'trialing', 'unpaid')),
    monthly_usage       integer     NOT NULL DEFAULT 0 CHECK (monthly_usage >= 0),
    usage_reset_at      timestamptz NOT NULL DEFAULT now(),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    -- Supabase's auth.users.is_sso_user, mirrored: see users_email_key.  (Last: added by 0.3.0.)
    is_sso_user         boolean     NOT NULL DEFAULT false,
    CONSTRAINT users_pkey PRIMARY KEY (id)
);
-- One account per e-mail address, except single sign-on accounts: Supabase's auth.users lets an
-- SSO user share an address with a password user (its users_email_partial_key is unique only
-- WHERE NOT is_sso_user), so that whoever registers someone else's address first cannot lock its
-- owner out of their company's SSO.  The mirror follows the same rule.
CREATE UNIQUE INDEX users_email_key ON tenancy.users (lower(email)) WHERE NOT is_sso_user;
-- The seed's idx_users_subscription (subscription_tier, subscription_status) is not kept: through
-- it any signed-in user could count the users of every plan (see the index rule above).

-- tenants: Tenant (Waygate), Agency (WEB-007), Workspace (Plan 1.2), Organization (DB plan).
-- The Waygate spec's single waygate_api_key_hash column is replaced by tenancy.api_keys (many keys
-- per tenant, each with scopes, expiry and revocation).
CREATE TABLE tenancy.tenants (
    id            uuid                  NOT NULL DEFAULT gen_random_uuid(),
    slug          text                  NOT NULL CONSTRAINT tenants_slug_check CHECK (slug ~ '^[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,62}$'),
    name          text                  NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    email         text                  CHECK (length(email) BETWEEN 3 AND 320 AND email LIKE '%_@_%'),
    status        tenancy.tenant_status NOT NULL DEFAULT 'active',
    settings      jsonb                 NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(settings) = 'object'),
    owner_user_id uuid                  REFERENCES tenancy.users (id) ON DELETE SET NULL,
    created_at    timestamptz           NOT NULL DEFAULT now(),
    updated_at    timestamptz           NOT NULL DEFAULT now(),
    CONSTRAINT tenants_pkey PRIMARY KEY (id),
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);
CREATE UNIQUE INDEX tenants_email_key ON tenancy.tenants (lower(email));
-- No index on owner_user_id (index rule above): deleting a user scans tenants, one row per tenant.

-- ---------------------------------------------------------------------------------------------
-- Tenant-owned tables
-- ---------------------------------------------------------------------------------------------

-- memberships: organization_user + user_role (DB plan), UserRole (WEB-007), owner (Plan 1.2).
CREATE TABLE tenancy.memberships (
    tenant_id  uuid                NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    user_id    uuid                NOT NULL REFERENCES tenancy.users (id) ON DELETE CASCADE,
    role       tenancy.member_role NOT NULL DEFAULT 'member',
    created_at timestamptz         NOT NULL DEFAULT now(),
    updated_at timestamptz         NOT NULL DEFAULT now(),
    CONSTRAINT memberships_pkey PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user_id_idx ON tenancy.memberships (user_id);

-- api_keys: Tenant.waygateApiKeyHash, generalised.  Only a keyed hash of the secret is stored, in
-- tenancy_private.api_key_hashes (sql/api_keys.sql, src/api_keys/); rows are written by
-- tenancy.create_api_key() / revoke / rotate only.  A key
-- carries its tenant id and key id: verification finds the row by primary key, as every other
-- lookup does (and as Citus needs: no unique constraint without tenant_id).  last_used_at lives in
-- tenancy.api_key_usage (sql/api_keys.sql), so recording use never locks these rows.
CREATE TABLE tenancy.api_keys (
    tenant_id    uuid        NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    name         text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    prefix       text        NOT NULL CHECK (length(prefix) BETWEEN 1 AND 64),
    environment  text        NOT NULL DEFAULT 'live' CHECK (environment IN ('live', 'test')),
    scopes       text[]      NOT NULL DEFAULT '{}',
    expires_at   timestamptz,
    revoked_at   timestamptz,
    replaced_by  uuid,
    created_by   uuid        REFERENCES tenancy.users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT api_keys_pkey PRIMARY KEY (tenant_id, id)
);
CREATE INDEX api_keys_created_by_idx ON tenancy.api_keys (tenant_id, created_by);
-- What tenancy.verify_api_key() returns.
CREATE TYPE tenancy.verified_api_key AS (tenant_id uuid, key_id uuid, scopes text[]);

-- clients: Client (WEB-007, DB plan).
CREATE TABLE tenancy.clients (
    tenant_id  uuid        NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    email      text        CHECK (length(email) BETWEEN 3 AND 320 AND email LIKE '%_@_%'),
    phone      text        CHECK (length(phone) <= 64),
    website    text,
    status     text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    metadata   jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clients_pkey PRIMARY KEY (tenant_id, id)
);
CREATE INDEX clients_tenant_name_idx ON tenancy.clients (tenant_id, name);

-- client_users: user_client (DB plan).  The user must be a member of the same tenant: the foreign
-- key goes to memberships, so removing a member removes their client links.
CREATE TABLE tenancy.client_users (
    tenant_id  uuid        NOT NULL,
    client_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT client_users_pkey PRIMARY KEY (tenant_id, client_id, user_id),
    CONSTRAINT client_users_client_fkey FOREIGN KEY (tenant_id, client_id)
        REFERENCES tenancy.clients (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT client_users_member_fkey FOREIGN KEY (tenant_id, user_id)
        REFERENCES tenancy.memberships (tenant_id, user_id) ON DELETE CASCADE
);
CREATE INDEX client_users_user_idx ON tenancy.client_users (tenant_id, user_id);

-- projects: Project (WEB-007); belongs to a client.
CREATE TABLE tenancy.projects (
    tenant_id   uuid        NOT NULL,
    id          uuid        NOT NULL DEFAULT gen_random_uuid(),
    client_id   uuid        NOT NULL,
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description text,
    status      text        NOT NULL DEFAULT 'planning'
                            CHECK (status IN ('planning', 'active', 'on_hold', 'completed', 'cancelled')),
    start_date  date,
    due_date    date,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT projects_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT projects_client_fkey FOREIGN KEY (tenant_id, client_id)
        REFERENCES tenancy.clients (tenant_id, id) ON DELETE CASCADE,
    CONSTRAINT projects_dates_check CHECK (due_date IS NULL OR start_date IS NULL OR due_date >= start_date)
);
CREATE INDEX projects_client_idx ON tenancy.projects (tenant_id, client_id);
CREATE INDEX projects_status_idx ON tenancy.projects (tenant_id, status);

-- integrations: Integration (Waygate spec).
CREATE TABLE tenancy.integrations (
    tenant_id         uuid                       NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    id                uuid                       NOT NULL DEFAULT gen_random_uuid(),
    name              varchar(255)               NOT NULL CHECK (length(name) >= 1),
    slug              text                       NOT NULL CONSTRAINT integrations_slug_check CHECK (slug ~ '^[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,62}$'),
    description       text,
    documentation_url text,
    auth_type         tenancy.auth_type          NOT NULL,
    auth_config       jsonb                      NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(auth_config) = 'object'),
    status            tenancy.integration_status NOT NULL DEFAULT 'draft',
    tags              text[]                     NOT NULL DEFAULT '{}',
    metadata          jsonb                      NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz                NOT NULL DEFAULT now(),
    updated_at        timestamptz                NOT NULL DEFAULT now(),
    CONSTRAINT integrations_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT integrations_slug_key UNIQUE (tenant_id, slug)
);
CREATE INDEX integrations_status_idx ON tenancy.integrations (tenant_id, status);
CREATE INDEX integrations_tags_idx ON tenancy.integrations USING gin (tags);

-- actions: Action (Waygate spec), with JSON Schema input/output.
CREATE TABLE tenancy.actions (
    tenant_id         uuid                NOT NULL,
    id                uuid                NOT NULL DEFAULT gen_random_uuid(),
    integration_id    uuid                NOT NULL,
    name              varchar(255)        NOT NULL CHECK (length(name) >= 1),
    slug              text                NOT NULL CONSTRAINT actions_slug_check CHECK (slug ~ '^[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,62}$'),
    description       text,
    http_method       tenancy.http_method NOT NULL,
    endpoint_template text                NOT NULL CHECK (length(endpoint_template) >= 1),
    input_schema      jsonb               NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(input_schema) = 'object'),
    output_schema     jsonb               NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(output_schema) = 'object'),
    pagination_config jsonb               CHECK (jsonb_typeof(pagination_config) = 'object'),
    retry_config      jsonb               CHECK (jsonb_typeof(retry_config) = 'object'),
    cacheable         boolean             NOT NULL DEFAULT false,
    cache_ttl_seconds integer             CHECK (cache_ttl_seconds > 0),
    metadata          jsonb               NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at        timestamptz         NOT NULL DEFAULT now(),
    updated_at        timestamptz         NOT NULL DEFAULT now(),
    CONSTRAINT actions_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT actions_slug_key UNIQUE (tenant_id, integration_id, slug),
    -- What request_logs references: an action together with its integration.
    CONSTRAINT actions_integration_id_key UNIQUE (tenant_id, integration_id, id),
    CONSTRAINT actions_integration_fkey FOREIGN KEY (tenant_id, integration_id)
        REFERENCES tenancy.integrations (tenant_id, id) ON DELETE CASCADE
);

-- integration_credentials: IntegrationCredential (Waygate spec), without its secrets: their
-- ciphertexts are in tenancy_private.credential_secrets (sql/vault.sql), written and read by the
-- vault's functions only.
CREATE TABLE tenancy.integration_credentials (
    tenant_id               uuid                      NOT NULL,
    id                      uuid                      NOT NULL DEFAULT gen_random_uuid(),
    integration_id          uuid                      NOT NULL,
    credential_type         tenancy.credential_type   NOT NULL,
    expires_at              timestamptz,
    scopes                  text[]                    NOT NULL DEFAULT '{}',
    status                  tenancy.credential_status NOT NULL DEFAULT 'active',
    created_at              timestamptz               NOT NULL DEFAULT now(),
    updated_at              timestamptz               NOT NULL DEFAULT now(),
    CONSTRAINT integration_credentials_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT integration_credentials_integration_fkey FOREIGN KEY (tenant_id, integration_id)
        REFERENCES tenancy.integrations (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX integration_credentials_integration_idx ON tenancy.integration_credentials (tenant_id, integration_id);
-- The token-refresh worker's query: active credentials that expire soon.  tenant_id first (index
-- rule above): across tenants the worker reads this small partial index whole and sorts it.
CREATE INDEX integration_credentials_expiring_idx ON tenancy.integration_credentials (tenant_id, expires_at)
    WHERE status = 'active' AND expires_at IS NOT NULL;

-- field_mappings: FieldMapping (Waygate spec).  The seed's nullable tenant_id (a mapping shared by
-- every tenant) is not kept: a shared mapping would be a row every tenant can read but none owns,
-- which is exactly what tenant isolation rules out.  Copy shared mappings into each tenant instead.
CREATE TABLE tenancy.field_mappings (
    tenant_id        uuid                      NOT NULL,
    id               uuid                      NOT NULL DEFAULT gen_random_uuid(),
    action_id        uuid                      NOT NULL,
    source_path      text                      NOT NULL CHECK (length(source_path) >= 1),
    target_path      text                      NOT NULL CHECK (length(target_path) >= 1),
    transform_config jsonb                     CHECK (jsonb_typeof(transform_config) = 'object'),
    direction        tenancy.mapping_direction NOT NULL,
    created_at       timestamptz               NOT NULL DEFAULT now(),
    updated_at       timestamptz               NOT NULL DEFAULT now(),
    CONSTRAINT field_mappings_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT field_mappings_target_key UNIQUE (tenant_id, action_id, direction, target_path),
    CONSTRAINT field_mappings_action_fkey FOREIGN KEY (tenant_id, action_id)
        REFERENCES tenancy.actions (tenant_id, id) ON DELETE CASCADE
);

-- request_logs: RequestLog (Waygate spec).  Append-only; range-partitioned by created_at.  The
-- default partition catches every row until partition maintenance creates dated partitions.
--
-- The key (tenant_id, created_at, id) and the per-integration index are on each partition, not on
-- the parent.  The parent belongs to the extension and the daily partitions do not, so pg_dump
-- dumps each partition with a CREATE TABLE, an early ATTACH PARTITION and then its own indexes: a
-- partitioned index on the parent would already have made the partition's index at the ATTACH,
-- and the restore would fail ("multiple primary keys").  The key includes the partition key, so
-- per-partition uniqueness is global uniqueness; maintain_request_logs gives each new partition
-- both indexes (tenancy._seal_partition).
CREATE TABLE tenancy.request_logs (
    tenant_id        uuid        NOT NULL,
    id               uuid        NOT NULL DEFAULT gen_random_uuid(),
    integration_id   uuid        NOT NULL,
    action_id        uuid        NOT NULL,
    api_key_id       uuid,
    request_summary  jsonb       NOT NULL CHECK (jsonb_typeof(request_summary) = 'object'),
    response_summary jsonb       CHECK (jsonb_typeof(response_summary) = 'object'),
    status_code      integer     CHECK (status_code BETWEEN 100 AND 599),
    latency_ms       integer     NOT NULL DEFAULT 0 CHECK (latency_ms >= 0),
    retry_count      integer     NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    error            jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- The action, of that integration, of that tenant (which implies the integration is the
    -- tenant's); deleting the integration deletes its actions and so their logs.
    CONSTRAINT request_logs_action_fkey FOREIGN KEY (tenant_id, integration_id, action_id)
        REFERENCES tenancy.actions (tenant_id, integration_id, id) ON DELETE CASCADE
) PARTITION BY RANGE (created_at);
-- Partitions are in tenancy_private: only their parent is read and written (sql/grants.sql).
CREATE TABLE tenancy_private.request_logs_default PARTITION OF tenancy.request_logs DEFAULT;
-- "latest requests of my tenant" reads the primary key backwards; the second index serves
-- per-integration views.
ALTER TABLE tenancy_private.request_logs_default
    ADD CONSTRAINT request_logs_default_pkey PRIMARY KEY (tenant_id, created_at, id);
CREATE INDEX request_logs_default_integration_idx
    ON tenancy_private.request_logs_default (tenant_id, integration_id, created_at DESC);

-- subscriptions: Phase 04, one subscription per tenant (the seed's one per user, moved to the tenant).
CREATE TABLE tenancy.subscriptions (
    tenant_id              uuid        NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    id                     uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id                uuid        REFERENCES tenancy.users (id) ON DELETE SET NULL,
    stripe_subscription_id text        NOT NULL,
    stripe_customer_id     text        NOT NULL,
    tier                   text        NOT NULL CHECK (tier IN ('free', 'pro', 'studio', 'enterprise')),
    status                 text        NOT NULL CHECK (status IN ('active', 'past_due', 'canceled', 'incomplete', 'trialing', 'unpaid')),
    current_period_start   timestamptz NOT NULL,
    current_period_end     timestamptz NOT NULL,
    cancel_at_period_end   boolean     NOT NULL DEFAULT false,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscriptions_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT subscriptions_tenant_key UNIQUE (tenant_id),
    CONSTRAINT subscriptions_stripe_key UNIQUE (tenant_id, stripe_subscription_id),
    CONSTRAINT subscriptions_period_check CHECK (current_period_end >= current_period_start)
);
-- A Stripe webhook that looks a subscription up by its Stripe ids, without knowing the tenant,
-- scans this table: one row per tenant.  Indexes on those ids alone would let a member read every
-- tenant's Stripe ids out of them (the index rule above).

-- subscription_audit: Phase 04 billing audit trail, append-only.  When a subscription is deleted
-- only subscription_id becomes NULL (ON DELETE SET NULL (column), PostgreSQL 15+), never tenant_id;
-- PostgreSQL 14 gets the same behaviour from a trigger (below the table).
-- The seed deletes a user's audit rows with the user; an audit trail should outlive the person, so
-- user_id becomes NULL instead.
CREATE TABLE tenancy.subscription_audit (
    tenant_id       uuid        NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    subscription_id uuid,
    user_id         uuid        REFERENCES tenancy.users (id) ON DELETE SET NULL,
    action          text        NOT NULL CHECK (length(action) BETWEEN 1 AND 255),
    stripe_event_id text,
    details         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT subscription_audit_pkey PRIMARY KEY (tenant_id, id)
);
-- Detaches a subscription's audit rows before it is deleted, where the key cannot do it by itself:
-- PostgreSQL 14 (no column list for SET NULL) and Citus (tenancy.distribute(): Citus refuses SET
-- NULL on a key that holds the distribution column).  SECURITY DEFINER: the audit trail is
-- append-only to its callers.
CREATE FUNCTION tenancy._detach_subscription_audit() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
BEGIN
    -- When the tenant itself is being deleted, its audit rows go by their own cascade.
    IF EXISTS (SELECT FROM tenancy.tenants WHERE id = OLD.tenant_id) THEN
        UPDATE tenancy.subscription_audit SET subscription_id = NULL
         WHERE tenant_id = OLD.tenant_id AND subscription_id = OLD.id;
    END IF;
    RETURN OLD;
END
$fn$;
DO $pg14$
BEGIN
    IF current_setting('server_version_num')::int >= 150000 THEN
        ALTER TABLE tenancy.subscription_audit ADD CONSTRAINT subscription_audit_subscription_fkey
            FOREIGN KEY (tenant_id, subscription_id)
            REFERENCES tenancy.subscriptions (tenant_id, id) ON DELETE SET NULL (subscription_id);
    ELSE
        -- PostgreSQL 14 has no column list for SET NULL.  The key stays NO ACTION (checked at the
        -- end of the statement), and a BEFORE DELETE trigger on subscriptions detaches the audit
        -- rows first.
        ALTER TABLE tenancy.subscription_audit ADD CONSTRAINT subscription_audit_subscription_fkey
            FOREIGN KEY (tenant_id, subscription_id) REFERENCES tenancy.subscriptions (tenant_id, id);
        CREATE TRIGGER subscription_audit_detach BEFORE DELETE ON tenancy.subscriptions
            FOR EACH ROW EXECUTE FUNCTION tenancy._detach_subscription_audit();
    END IF;
END
$pg14$;
CREATE INDEX subscription_audit_tenant_created_idx ON tenancy.subscription_audit (tenant_id, created_at DESC);
CREATE INDEX subscription_audit_user_idx ON tenancy.subscription_audit (tenant_id, user_id);
CREATE INDEX subscription_audit_stripe_idx ON tenancy.subscription_audit (tenant_id, stripe_event_id);
CREATE INDEX subscription_audit_subscription_idx ON tenancy.subscription_audit (tenant_id, subscription_id);

-- jobs: Phase 04 async jobs.  user_id is who started the job; the job stays when the user goes.
CREATE TABLE tenancy.jobs (
    tenant_id     uuid        NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
    id            uuid        NOT NULL DEFAULT gen_random_uuid(),
    user_id       uuid        REFERENCES tenancy.users (id) ON DELETE SET NULL,
    job_type      text        NOT NULL CHECK (length(job_type) BETWEEN 1 AND 255),
    status        text        NOT NULL DEFAULT 'queued'
                              CHECK (status IN ('queued', 'processing', 'completed', 'failed', 'partial')),
    progress      integer     NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 100),
    error_message text,
    parameters    jsonb,
    result        jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    CONSTRAINT jobs_pkey PRIMARY KEY (tenant_id, id)
);
CREATE INDEX jobs_user_status_idx ON tenancy.jobs (tenant_id, user_id, status);
CREATE INDEX jobs_created_idx ON tenancy.jobs (tenant_id, created_at DESC);
CREATE INDEX jobs_type_status_idx ON tenancy.jobs (tenant_id, job_type, status);

-- assets: Phase 04 files produced by jobs.  file_size is bigint (the seed's integer stops at 2 GiB).
CREATE TABLE tenancy.assets (
    tenant_id    uuid        NOT NULL,
    id           uuid        NOT NULL DEFAULT gen_random_uuid(),
    job_id       uuid        NOT NULL,
    user_id      uuid        REFERENCES tenancy.users (id) ON DELETE SET NULL,
    asset_type   text        NOT NULL CHECK (length(asset_type) BETWEEN 1 AND 255),
    url          text        NOT NULL,
    storage_path text        NOT NULL,
    file_size    bigint      NOT NULL CHECK (file_size >= 0),
    metadata     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assets_pkey PRIMARY KEY (tenant_id, id),
    CONSTRAINT assets_job_fkey FOREIGN KEY (tenant_id, job_id)
        REFERENCES tenancy.jobs (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX assets_job_idx ON tenancy.assets (tenant_id, job_id);
CREATE INDEX assets_user_idx ON tenancy.assets (tenant_id, user_id);

-- ---------------------------------------------------------------------------------------------
-- pg_dump keeps the rows of extension tables only when they are registered as configuration.
-- (No sequences: every key is a uuid.)  The partitioned parent carries no rows of its own; its
-- default partition does.
-- ---------------------------------------------------------------------------------------------
-- One statement per table: each call updates the same pg_extension row.
SELECT pg_catalog.pg_extension_config_dump('tenancy.users', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.memberships', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.api_keys', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.clients', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.client_users', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.projects', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.integrations', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.actions', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.integration_credentials', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.field_mappings', '');
-- pg_dump 14 crashes (SIGSEGV in dumpTableData) on an extension configuration table that is a
-- partition, so on PostgreSQL 14 the default partition is not marked: there, run
-- tenancy.maintain_request_logs() before a dump (it moves its rows into daily partitions, which
-- pg_dump always dumps) or dump with pg_dump 15 or later.  docs/upgrading.md says so.
SELECT pg_catalog.pg_extension_config_dump('tenancy_private.request_logs_default', '')
 WHERE current_setting('server_version_num')::int >= 150000;
SELECT pg_catalog.pg_extension_config_dump('tenancy.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.subscription_audit', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.jobs', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.assets', '');
