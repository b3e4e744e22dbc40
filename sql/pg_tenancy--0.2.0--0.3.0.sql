-- pg_tenancy 0.2.0 -> 0.3.0.  Hand-written; never edited once 0.3.0 is released
-- (sql/released.sha256, checked by pgrx-tests/tests/upgrade.rs).  docs/security.md explains every
-- change; in short:
--
-- 1. One context per statement: policies read tenant and role in one call,
--    tenancy.current_tenant_for(VARIADIC roles); the library refuses context changes under an open
--    statement that read the context (no SQL here).  Every policy of the extension is written
--    again from the role matrix, and so are those of users' tables isolated by
--    enable_tenant_isolation() (same meaning, one InitPlan per role check).
-- 2. The role matrix (docs/security.md): integrations, actions and field mappings are written by
--    owner and admin only; billing and assets by service_role only; jobs are inserted by users and
--    advanced by the service; clients see no integrations, credentials, logs or billing.
-- 3. One door: no application role inserts into request_logs (log_request is the door), writes
--    ciphertexts or reads them (the vault's functions), or writes memberships
--    (tenancy.add_member, set_member_role, remove_member: only an owner makes or changes an owner,
--    and the last owner stays).
-- 4. Locks: maintain_request_logs takes a lock of the extension's own class (SQL cannot hold it
--    up), waits at most lock_wait for each partition step, and skips a partition that other
--    objects depend on; the row types of request_logs, its partitions and the internal tables are
--    no longer usable by PUBLIC (a temporary table of such a type would block maintenance).
-- 4b. tenants.email is no longer updatable by application roles (unique across tenants: one
--    tenant could claim another's address); jobs are inserted with id, job_type and parameters
--    only (status, progress, result and times are the workers').
-- 5. list_api_keys reads the context once.  The cache-invalidation triggers fire for each row
--    actually written (and TRUNCATE), ALWAYS (also when logical replication applies a change),
--    and actions and field_mappings get them (backends keep actions' mapping lists).
-- 6. tenancy.users.is_sso_user: a single-sign-on account may share an e-mail address with a
--    password account, as in Supabase's auth.users; the mirror copies the flag.
-- 7. Actions: JSON Schema functions (pg_jsonschema's names and argument order), input and
--    output validation, field mappings applied in the database; schemas and mappings are
--    checked when written (see section 7 for rows written before).
-- 8. The private schema tenancy_private: internal tables (root keys, data keys, pepper, key usage)
--    and secret material (API-key hashes, credentials' ciphertexts) leave tenancy, and so do
--    request_logs' partitions (read and written through request_logs only); the extension's slug
--    columns are text with a CHECK instead of the domain tenancy.slug (which stays, for users'
--    tables); the actions' checks are written f(...) IS NOT FALSE.
--
-- 9. Default privileges: what the role running the update would give by ALTER DEFAULT
--    PRIVILEGES to the objects this update creates is revoked before they are granted.
--
-- Privileges are revoked from the application roles on every table and granted again exactly as
-- a fresh install grants them.  Takes ACCESS EXCLUSIVE locks on every table of the extension for
-- a moment (policies, grants): run it when a short pause of writes is acceptable.
\echo Use "ALTER EXTENSION pg_tenancy UPDATE TO '0.3.0'" to load this file. \quit

-- ---------------------------------------------------------------------------------------------
-- New functions of the library
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION tenancy."current_tenant_for"(
	"roles" VARIADIC TEXT[]
) RETURNS uuid
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'current_tenant_for_wrapper';

-- The keys of tenancy.jwt_secret (a secret, a JWK or a JWKS), or of a value to check before
-- setting it (src/jwt/backend.rs).  Superuser only: no grant.
CREATE FUNCTION tenancy."jwt_keys"(
	"setting" TEXT DEFAULT NULL
) RETURNS TABLE (
	"position" INT,
	"kid" TEXT,
	"kty" TEXT,
	"alg" TEXT,
	"bits" INT,
	"used" bool,
	"note" TEXT
)
STABLE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'jwt_keys_wrapper';

CREATE FUNCTION tenancy."add_member"(
	"user_id" uuid,
	"role" TEXT DEFAULT 'member'
) RETURNS bool
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'add_member_wrapper';

CREATE FUNCTION tenancy."set_member_role"(
	"user_id" uuid,
	"role" TEXT
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'set_member_role_wrapper';

CREATE FUNCTION tenancy."remove_member"(
	"user_id" uuid
) RETURNS bool
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'remove_member_wrapper';

CREATE FUNCTION tenancy."_lock_request_log_maintenance"() RETURNS void
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_lock_request_log_maintenance_wrapper';

-- Redaction explained: each value cut out, with the rule that cut it; and the rules
-- (src/request_log/mod.rs, docs/request-logs.md).
CREATE FUNCTION tenancy."redact"(
	"value" jsonb,
	"explain" bool
) RETURNS jsonb
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'redact_explain_wrapper';

CREATE FUNCTION tenancy."redaction_rules"() RETURNS TABLE (
	"rule" TEXT,
	"kind" TEXT,
	"category" TEXT,
	"enabled" bool
)
STRICT STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'redaction_rules_wrapper';

-- ---------------------------------------------------------------------------------------------
-- Users: single sign-on accounts may share an address (sql/schema.sql, users_email_key)
-- ---------------------------------------------------------------------------------------------
ALTER TABLE tenancy.users ADD COLUMN is_sso_user boolean NOT NULL DEFAULT false;
DROP INDEX tenancy.users_email_key;
CREATE UNIQUE INDEX users_email_key ON tenancy.users (lower(email)) WHERE NOT is_sso_user;

CREATE OR REPLACE FUNCTION tenancy.handle_auth_user()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM tenancy.users WHERE id OPERATOR(pg_catalog.=) OLD.id;
        RETURN OLD;
    END IF;
    IF NEW.email IS NULL THEN
        RETURN NEW;
    END IF;
    -- is_sso_user through to_jsonb: older auth schemas do not have the column.
    INSERT INTO tenancy.users AS u (id, email, name, avatar_url, is_sso_user)
    VALUES (NEW.id,
            NEW.email,
            COALESCE(NEW.raw_user_meta_data OPERATOR(pg_catalog.->>) 'name',
                     NEW.raw_user_meta_data OPERATOR(pg_catalog.->>) 'full_name'),
            NEW.raw_user_meta_data OPERATOR(pg_catalog.->>) 'avatar_url',
            COALESCE((pg_catalog.to_jsonb(NEW) OPERATOR(pg_catalog.->>) 'is_sso_user')::boolean, false))
    ON CONFLICT (id) DO UPDATE
        SET email = EXCLUDED.email,
            name = COALESCE(EXCLUDED.name, u.name),
            avatar_url = COALESCE(EXCLUDED.avatar_url, u.avatar_url),
            is_sso_user = EXCLUDED.is_sso_user;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION tenancy.sync_auth_users()
    RETURNS bigint
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    copied bigint;
BEGIN
    IF pg_catalog.to_regclass('auth.users') IS NULL THEN
        RAISE EXCEPTION 'auth.users does not exist' USING ERRCODE = 'undefined_table';
    END IF;
    IF (SELECT count(*) FROM pg_catalog.pg_attribute
        WHERE attrelid = 'auth.users'::regclass AND NOT attisdropped
          AND (attname, atttypid) IN (('id', 'uuid'::regtype), ('email', 'text'::regtype),
                                      ('email', 'varchar'::regtype), ('raw_user_meta_data', 'jsonb'::regtype))) < 3 THEN
        RAISE EXCEPTION 'auth.users does not have the columns id uuid, email text, raw_user_meta_data jsonb'
            USING ERRCODE = 'undefined_column';
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER tenancy_sync_users
                        AFTER INSERT OR DELETE OR UPDATE OF email, raw_user_meta_data%s ON auth.users
                        FOR EACH ROW EXECUTE FUNCTION tenancy.handle_auth_user()',
                   CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_attribute
                                      WHERE attrelid = 'auth.users'::regclass AND attname = 'is_sso_user' AND NOT attisdropped)
                        THEN ', is_sso_user' ELSE '' END);
    INSERT INTO tenancy.users (id, email, name, avatar_url, is_sso_user)
    SELECT a.id, a.email,
           COALESCE(a.raw_user_meta_data ->> 'name', a.raw_user_meta_data ->> 'full_name'),
           a.raw_user_meta_data ->> 'avatar_url',
           COALESCE((to_jsonb(a) ->> 'is_sso_user')::boolean, false)
    FROM auth.users a
    WHERE a.email IS NOT NULL
    ON CONFLICT (id) DO NOTHING;
    GET DIAGNOSTICS copied = ROW_COUNT;
    RETURN copied;
END
$$;

-- With Supabase: mark the mirrored SSO accounts, and let the trigger follow the flag.
DO $sso$
BEGIN
    IF pg_catalog.to_regclass('auth.users') IS NOT NULL
       AND EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgname = 'tenancy_sync_users' AND tgrelid = pg_catalog.to_regclass('auth.users')) THEN
        UPDATE tenancy.users u SET is_sso_user = true
          FROM auth.users a
         WHERE a.id = u.id AND COALESCE((to_jsonb(a) ->> 'is_sso_user')::boolean, false);
        PERFORM tenancy.sync_auth_users();
    END IF;
END
$sso$;

-- ---------------------------------------------------------------------------------------------
-- 8. The private schema (sql/schema.sql): internal tables and secret material leave `tenancy`,
--    the schema applications, PostgREST and code generators read.  Root key fingerprints, data
--    keys, the pepper and key usage move as they are; API-key hashes and credentials'
--    ciphertexts move out of their rows into tables of their own.  Slug columns become text with
--    a CHECK (generators cannot map a domain).  Views in other sessions' temporary schemas that
--    read the columns that change are dropped first (any role can make one, and it would block
--    the update for as long as its session lives); another object that depends on them makes the
--    update fail, naming it.
-- ---------------------------------------------------------------------------------------------
CREATE SCHEMA tenancy_private;
REVOKE ALL ON SCHEMA tenancy_private FROM PUBLIC;
COMMENT ON SCHEMA tenancy_private IS
    'pg_tenancy internals and secret material (keys, hashes, ciphertexts): reached only through the extension''s functions';
DO $temp_objects$
DECLARE
    o record;
BEGIN
    -- Whatever another session (or this one) made in its temporary schema that depends on a
    -- column this update changes: views (their _RETURN rule), other rules, policies, functions.
    FOR o IN
        SELECT DISTINCT d.classid, d.objid, i.type, i.identity,
               CASE WHEN d.classid = 'pg_catalog.pg_rewrite'::regclass THEN r.ev_class END AS rel,
               r.rulename
          FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
          LEFT JOIN pg_catalog.pg_rewrite r ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND r.oid = d.objid
          LEFT JOIN pg_catalog.pg_policy p ON d.classid = 'pg_catalog.pg_policy'::regclass AND p.oid = d.objid
          LEFT JOIN pg_catalog.pg_trigger t ON d.classid = 'pg_catalog.pg_trigger'::regclass AND t.oid = d.objid
          LEFT JOIN pg_catalog.pg_proc f ON d.classid = 'pg_catalog.pg_proc'::regclass AND f.oid = d.objid
          LEFT JOIN pg_catalog.pg_class c ON c.oid = coalesce(r.ev_class, p.polrelid, t.tgrelid,
                                                               CASE WHEN d.classid = 'pg_catalog.pg_class'::regclass THEN d.objid END),
               LATERAL pg_catalog.pg_identify_object(d.classid, d.objid, 0) i,
               LATERAL (SELECT coalesce(c.relnamespace, f.pronamespace) AS nsp) n
         WHERE d.refclassid = 'pg_catalog.pg_class'::regclass
           AND (pg_catalog.pg_is_other_temp_schema(n.nsp) OR n.nsp = pg_catalog.pg_my_temp_schema())
           AND (d.refobjid, a.attname) IN (('tenancy.api_keys'::regclass, 'key_hash'),
                                           ('tenancy.integration_credentials'::regclass, 'encrypted_data'),
                                           ('tenancy.integration_credentials'::regclass, 'encrypted_refresh_token'),
                                           ('tenancy.tenants'::regclass, 'slug'),
                                           ('tenancy.integrations'::regclass, 'slug'),
                                           ('tenancy.actions'::regclass, 'slug'))
    LOOP
        RAISE WARNING 'dropping the temporary % % of another session: it depends on a column this update changes',
            CASE WHEN o.rulename = '_RETURN' THEN 'view' ELSE o.type END,
            CASE WHEN o.rulename = '_RETURN' THEN o.rel::regclass::text ELSE o.identity END;
        IF o.rulename = '_RETURN' THEN
            EXECUTE pg_catalog.format('DROP %s %s CASCADE',
                CASE (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = o.rel) WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'VIEW' END,
                o.rel::regclass);
        ELSE
            EXECUTE pg_catalog.format('DROP %s %s CASCADE', o.type, o.identity);
        END IF;
    END LOOP;
END
$temp_objects$;
ALTER TABLE tenancy.root_keys SET SCHEMA tenancy_private;
ALTER TABLE tenancy.data_keys SET SCHEMA tenancy_private;
ALTER TABLE tenancy.peppers SET SCHEMA tenancy_private;
ALTER TABLE tenancy.api_key_usage SET SCHEMA tenancy_private;
-- request_logs stays; its partitions (read and written through it only) move: the default one,
-- a member, and the daily ones maintenance made, which are not.
ALTER TABLE tenancy.request_logs_default SET SCHEMA tenancy_private;
DO $parts$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'tenancy.request_logs'::regclass AND c.relnamespace = 'tenancy'::regnamespace LOOP
        EXECUTE format('ALTER TABLE %s SET SCHEMA tenancy_private', part);
    END LOOP;
END
$parts$;

CREATE TABLE tenancy_private.api_key_hashes (
    tenant_id uuid  NOT NULL,
    key_id    uuid  NOT NULL,
    key_hash  bytea NOT NULL CHECK (length(key_hash) = 32),
    CONSTRAINT api_key_hashes_pkey PRIMARY KEY (tenant_id, key_id),
    CONSTRAINT api_key_hashes_key_fkey FOREIGN KEY (tenant_id, key_id)
        REFERENCES tenancy.api_keys (tenant_id, id) ON DELETE CASCADE
);
INSERT INTO tenancy_private.api_key_hashes (tenant_id, key_id, key_hash)
    SELECT tenant_id, id, key_hash FROM tenancy.api_keys;
ALTER TABLE tenancy.api_keys DROP COLUMN key_hash;
ALTER TABLE tenancy_private.api_key_hashes ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.api_key_hashes FORCE ROW LEVEL SECURITY;
SELECT pg_catalog.pg_extension_config_dump('tenancy_private.api_key_hashes', '');

CREATE TABLE tenancy_private.credential_secrets (
    tenant_id               uuid  NOT NULL,
    credential_id           uuid  NOT NULL,
    encrypted_data          bytea NOT NULL,
    encrypted_refresh_token bytea,
    CONSTRAINT credential_secrets_pkey PRIMARY KEY (tenant_id, credential_id),
    CONSTRAINT credential_secrets_credential_fkey FOREIGN KEY (tenant_id, credential_id)
        REFERENCES tenancy.integration_credentials (tenant_id, id) ON DELETE CASCADE
);
INSERT INTO tenancy_private.credential_secrets (tenant_id, credential_id, encrypted_data, encrypted_refresh_token)
    SELECT tenant_id, id, encrypted_data, encrypted_refresh_token FROM tenancy.integration_credentials;
ALTER TABLE tenancy.integration_credentials DROP COLUMN encrypted_data, DROP COLUMN encrypted_refresh_token;
-- A dropped column's bytes stay in the table's pages until its rows are written again: both
-- tables are rewritten now (CLUSTER writes dropped columns as NULL), so no hash or ciphertext
-- outlives the update in tenancy's files.
CLUSTER tenancy.api_keys USING api_keys_pkey;
ALTER TABLE tenancy.api_keys SET WITHOUT CLUSTER;
CLUSTER tenancy.integration_credentials USING integration_credentials_pkey;
ALTER TABLE tenancy.integration_credentials SET WITHOUT CLUSTER;
ALTER TABLE tenancy_private.credential_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE tenancy_private.credential_secrets FORCE ROW LEVEL SECURITY;
SELECT pg_catalog.pg_extension_config_dump('tenancy_private.credential_secrets', '');

ALTER TABLE tenancy.tenants ALTER COLUMN slug TYPE text,
    ADD CONSTRAINT tenants_slug_check CHECK (slug ~ '^[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,62}$');
ALTER TABLE tenancy.integrations ALTER COLUMN slug TYPE text,
    ADD CONSTRAINT integrations_slug_check CHECK (slug ~ '^[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,62}$');
ALTER TABLE tenancy.actions ALTER COLUMN slug TYPE text,
    ADD CONSTRAINT actions_slug_check CHECK (slug ~ '^[a-z0-9]([a-z0-9]|-(?=[a-z0-9])){0,62}$');

-- health() counts and checks the tables of both schemas.
CREATE OR REPLACE FUNCTION tenancy.health(exact_counts boolean DEFAULT false)
    RETURNS jsonb
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    counts jsonb := '{}';
    unforced text[];
    r record;
    n bigint;
BEGIN
    FOR r IN SELECT c.oid, c.relname FROM pg_class c
             WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace)
               AND c.relkind IN ('r', 'p') AND NOT c.relispartition
             ORDER BY c.relname LOOP
        IF exact_counts THEN
            EXECUTE format('SELECT count(*) FROM %s', r.oid::regclass) INTO n;
        ELSE
            SELECT COALESCE(sum(pg_stat_get_live_tuples(p.relid)), 0) INTO n
            FROM pg_partition_tree(r.oid) p WHERE p.isleaf;
        END IF;
        counts := counts || jsonb_build_object(r.relname, n);
    END LOOP;
    SELECT array_agg(c.relname ORDER BY c.relname) INTO unforced
    FROM pg_class c
    WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND c.relkind IN ('r', 'p')
      AND NOT (c.relrowsecurity AND c.relforcerowsecurity);
    RETURN tenancy.library_info() || jsonb_build_object(
        'extension_version', (SELECT extversion FROM pg_extension WHERE extname = 'pg_tenancy'),
        'server_version', current_setting('server_version'),
        'rls_forced_everywhere', unforced IS NULL,
        'tables_without_forced_rls', COALESCE(to_jsonb(unforced), '[]'),
        'row_counts', counts,
        'row_counts_exact', exact_counts);
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Policies: every table again, from the role matrix
-- ---------------------------------------------------------------------------------------------
DROP FUNCTION tenancy._isolate(regclass, text);
CREATE FUNCTION tenancy._isolate(tbl regclass, readers text[], inserters text[], updaters text[],
                                 deleters text[], own_reads boolean DEFAULT false,
                                 own_inserts boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    every_role constant text[] := '{owner,admin,manager,member,client,api_key}';
    read_using text;
    pol        text;
    cmd        record;
    -- Each check is an InitPlan, (SELECT tenancy.f(...)), evaluated once per statement; but Citus
    -- refuses subqueries in policies, so with Citus in the database it is tenancy.f(...) (STABLE;
    -- still one context per statement: src/context/statements.rs).  tenancy.distribute() turns
    -- existing policies the same way (tenancy._citus_policies).
    o          text := CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus') THEN '' ELSE '(SELECT ' END;
    c          text := CASE WHEN o = '' THEN '' ELSE ')' END;
BEGIN
    IF EXISTS (SELECT FROM unnest(readers || inserters || updaters || deleters) r WHERE r IS NULL OR NOT r = ANY (every_role)) THEN
        RAISE EXCEPTION 'tenancy._isolate(): roles are owner, admin, manager, member, client, api_key'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                   WHERE attrelid = tbl AND attname = 'tenant_id' AND atttypid = 'uuid'::regtype
                     AND attnum > 0 AND NOT attisdropped) THEN
        RAISE EXCEPTION 'table % has no column tenant_id of type uuid', tbl
            USING ERRCODE = 'undefined_column',
                  HINT = 'Add "tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE" first.';
    END IF;

    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    FOREACH pol IN ARRAY ARRAY['tenancy_select', 'tenancy_insert', 'tenancy_update', 'tenancy_delete',
                               'tenancy_service', 'tenancy_service_select', 'tenancy_service_insert'] LOOP
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = tbl AND polname = pol) THEN
            EXECUTE format('DROP POLICY %I ON %s', pol, tbl);
        END IF;
    END LOOP;

    FOR cmd IN SELECT * FROM (VALUES ('select', readers), ('insert', inserters), ('update', updaters),
                                     ('delete', deleters)) AS c(name, roles)
               WHERE cardinality(c.roles) > 0 LOOP
        -- Every role of a tenant: the tenant alone (also a service context under authenticated).
        read_using := CASE WHEN every_role <@ cmd.roles
                           THEN format('tenant_id = %stenancy.current_tenant_id()%s', o, c)
                           ELSE format('tenant_id = %stenancy.current_tenant_for(VARIADIC %L::text[])%s', o, cmd.roles, c) END;
        CASE cmd.name
        WHEN 'select' THEN
            IF own_reads THEN
                read_using := format('(%s) OR user_id = %stenancy.current_user_id()%s', read_using, o, c);
            END IF;
            EXECUTE format('CREATE POLICY tenancy_select ON %s FOR SELECT TO authenticated USING (%s)', tbl, read_using);
        WHEN 'insert' THEN
            IF own_inserts THEN
                read_using := format('%s AND user_id IS NOT DISTINCT FROM %stenancy.current_user_id()%s', read_using, o, c);
            END IF;
            EXECUTE format('CREATE POLICY tenancy_insert ON %s FOR INSERT TO authenticated WITH CHECK (%s)', tbl, read_using);
        WHEN 'update' THEN
            EXECUTE format('CREATE POLICY tenancy_update ON %s FOR UPDATE TO authenticated USING (%s) WITH CHECK (%s)',
                           tbl, read_using, read_using);
        WHEN 'delete' THEN
            EXECUTE format('CREATE POLICY tenancy_delete ON %s FOR DELETE TO authenticated USING (%s)', tbl, read_using);
        END CASE;
    END LOOP;
    EXECUTE format('CREATE POLICY tenancy_service ON %s FOR ALL TO service_role USING (true) WITH CHECK (true)', tbl);
END
$$;

CREATE OR REPLACE FUNCTION tenancy.enable_tenant_isolation(tbl regclass)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    exposed record;
BEGIN
    IF tbl IS NULL THEN
        RAISE EXCEPTION 'tenancy.enable_tenant_isolation(): tbl must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM tenancy._isolate(tbl, '{owner,admin,manager,member,client,api_key}',
                             '{owner,admin,manager,member,api_key}', '{owner,admin,manager,member,api_key}',
                             '{owner,admin,manager,member,api_key}');
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO authenticated', tbl);
    EXECUTE format('GRANT ALL ON %s TO service_role', tbl);
    EXECUTE format('REVOKE ALL ON %s FROM anon', tbl);
    IF has_function_privilege('tenancy.index_exposures()', 'EXECUTE') THEN
        FOR exposed IN SELECT * FROM tenancy.index_exposures() e WHERE e.table_name = tbl LOOP
            RAISE WARNING 'index % leads with "%", not tenant_id', exposed.index_name, exposed.leading_column
                USING DETAIL = 'An index scan checks its own conditions before the policy: members can count, '
                               'and range by range read, other tenants'' values of this column '
                               '(EXPLAIN ANALYZE, pg_stat_xact_user_tables).',
                      HINT = format('Put tenant_id first: (tenant_id, %I, ...).', exposed.leading_column);
        END LOOP;
    END IF;
END
$$;

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

-- Users' tables isolated by 0.2.0's enable_tenant_isolation(): the same policies, each role check
-- in one call.
SELECT tenancy._isolate(c.oid, '{owner,admin,manager,member,client,api_key}', '{owner,admin,manager,member,api_key}',
                        '{owner,admin,manager,member,api_key}', '{owner,admin,manager,member,api_key}')
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace <> 'tenancy'::regnamespace
   AND EXISTS (SELECT FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenancy_select');

DROP POLICY tenancy_update ON tenancy.tenants;
CREATE POLICY tenancy_update ON tenancy.tenants FOR UPDATE TO authenticated
    USING (id = (SELECT tenancy.current_tenant_for('owner', 'admin')))
    WITH CHECK (id = (SELECT tenancy.current_tenant_for('owner', 'admin')));

-- Row types no application role names: a temporary table of such a type would depend on the table
-- and stop its partitions from being dropped (maintenance) or the table from being changed.
-- (The other tables' row types stay usable: PostgREST names them, json_populate_recordset.)
-- (tenancy_private's row types are out of reach anyway: no role has USAGE on the schema.)
REVOKE USAGE ON TYPE tenancy.request_logs, tenancy_private.request_logs_default, tenancy_private.root_keys,
    tenancy_private.data_keys, tenancy_private.peppers, tenancy_private.api_key_usage,
    tenancy_private.api_key_hashes, tenancy_private.credential_secrets FROM PUBLIC;

DO $types$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT i.inhrelid::regclass FROM pg_catalog.pg_inherits i
                 WHERE i.inhparent = 'tenancy.request_logs'::regclass AND i.inhrelid <> 'tenancy_private.request_logs_default'::regclass LOOP
        EXECUTE format('REVOKE USAGE ON TYPE %s FROM PUBLIC', part);
    END LOOP;
END
$types$;

-- ---------------------------------------------------------------------------------------------
-- Grants: from nothing, as a fresh install grants them
-- ---------------------------------------------------------------------------------------------
REVOKE ALL ON
    tenancy.tenants, tenancy.users, tenancy.memberships, tenancy.api_keys, tenancy.clients,
    tenancy.client_users, tenancy.projects, tenancy.integrations, tenancy.actions,
    tenancy.integration_credentials, tenancy.field_mappings, tenancy.request_logs,
    tenancy.subscriptions, tenancy.subscription_audit, tenancy.jobs, tenancy.assets
    FROM anon, authenticated, service_role;
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
-- API keys are made, revoked and rotated by their functions only (src/api_keys.rs); the hash is
-- no one's to read.  Owner/admin (RLS) may rename or delete a key.
GRANT SELECT (tenant_id, id, name, prefix, environment, scopes, expires_at, revoked_at, replaced_by,
              created_by, created_at, updated_at),
      UPDATE (name), DELETE
    ON tenancy.api_keys TO authenticated, service_role;
-- Credentials are written and read by the vault's functions only (src/vault/): no plaintext and no
-- ciphertext of anyone's choosing gets in, and the ciphertexts are no one's to read.  Owner/admin
-- (RLS) may delete one.
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
-- Request-log maintenance: its own lock class, bounded waits, partitions' row types closed
-- ---------------------------------------------------------------------------------------------
DROP FUNCTION tenancy.maintain_request_logs(interval, integer, timestamptz);
CREATE FUNCTION tenancy.maintain_request_logs(retain interval DEFAULT '30 days', premake integer DEFAULT 7,
                                              as_of timestamptz DEFAULT now(),
                                              lock_wait interval DEFAULT '2 s')
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    today      timestamptz;
    cutoff     timestamptz;
    day        timestamptz;
    part       text;
    n          bigint;
    created    text[] := '{}';
    moved      jsonb := '{}';
    dropped    text[] := '{}';
    deleted    bigint := 0;
    skipped    text[] := '{}';
    r          record;
    -- The caller's lock_timeout, put back before returning (the steps below set their own).
    caller_lock_timeout constant text := current_setting('lock_timeout');
BEGIN
    IF retain IS NULL OR retain <= interval '0' THEN
        RAISE EXCEPTION 'retain must be a positive interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF premake IS NULL OR premake NOT BETWEEN 0 AND 366 THEN
        RAISE EXCEPTION 'premake must be 0-366 days' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF as_of IS NULL THEN
        RAISE EXCEPTION 'as_of must not be NULL' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF lock_wait IS NULL OR lock_wait < interval '0' THEN
        RAISE EXCEPTION 'lock_wait must be a non-negative interval' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- One run at a time, under a lock of the extension's own class: pg_advisory_lock() cannot
    -- take it, so no role can hold maintenance up.
    PERFORM tenancy._lock_request_log_maintenance();
    -- 0 would mean "wait forever": the smallest wait instead.
    PERFORM set_config('lock_timeout', greatest(extract(epoch FROM lock_wait) * 1000, 1)::bigint::text, true);
    today := date_trunc('day', as_of AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    -- Whole days: a day goes once all of it is older than the retention.
    cutoff := date_trunc('day', (as_of - retain) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';

    -- 1. Rows in the default partition older than the retention go; the others move to their day.
    DELETE FROM tenancy_private.request_logs_default WHERE created_at < cutoff;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    FOR day IN
        SELECT DISTINCT date_trunc('day', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
        FROM tenancy_private.request_logs_default ORDER BY 1
    LOOP
        part := 'request_logs_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF to_regclass('tenancy_private.' || part) IS NOT NULL THEN
            RAISE EXCEPTION 'tenancy_private.% exists but is not attached for its day', part
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Attach it to tenancy.request_logs or drop it, then run maintenance again.';
        END IF;
        BEGIN
            EXECUTE format('CREATE TABLE tenancy_private.%I (LIKE tenancy.request_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
            EXECUTE format('WITH m AS (DELETE FROM tenancy_private.request_logs_default WHERE created_at >= $1 AND created_at < $2 RETURNING *)
                            INSERT INTO tenancy_private.%I SELECT * FROM m', part)
                USING day, day + interval '1 day';
            GET DIAGNOSTICS n = ROW_COUNT;
            EXECUTE format('ALTER TABLE tenancy.request_logs ATTACH PARTITION tenancy_private.%I FOR VALUES FROM (%L) TO (%L)',
                           part, day, day + interval '1 day');
            PERFORM tenancy._seal_partition(part);
            moved := moved || jsonb_build_object(part, n);
        EXCEPTION WHEN lock_not_available THEN
            skipped := skipped || ('move to ' || part);
        END;
    END LOOP;

    -- 2. The partitions of today and the next `premake` days.
    FOR day IN SELECT today + g * interval '1 day' FROM generate_series(0, premake) g LOOP
        part := 'request_logs_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD');
        CONTINUE WHEN to_regclass('tenancy_private.' || part) IS NOT NULL;
        BEGIN
            EXECUTE format('CREATE TABLE tenancy_private.%I PARTITION OF tenancy.request_logs FOR VALUES FROM (%L) TO (%L)',
                           part, day, day + interval '1 day');
            PERFORM tenancy._seal_partition(part);
            created := created || part;
        EXCEPTION WHEN lock_not_available THEN
            skipped := skipped || ('create ' || part);
        END;
    END LOOP;

    -- 3. Partitions entirely older than the retention.
    FOR r IN
        SELECT c.oid::regclass AS part, c.relname, (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS upper_bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'tenancy.request_logs'::regclass AND c.relname LIKE 'request\_logs\_p%'
        ORDER BY 1
    LOOP
        IF r.upper_bound IS NOT NULL AND r.upper_bound <= cutoff THEN
            BEGIN
                EXECUTE format('DROP TABLE %s', r.part);
                dropped := dropped || r.relname::text;
            EXCEPTION
                WHEN lock_not_available THEN
                    skipped := skipped || ('drop ' || r.relname::text);
                WHEN dependent_objects_still_exist THEN
                    -- Something outside the extension depends on the partition: left for the DBA.
                    skipped := skipped || ('drop ' || r.relname::text || ' (other objects depend on it)');
                    RAISE WARNING 'tenancy.maintain_request_logs: % is past the retention but other objects depend on it', r.relname;
            END;
        END IF;
    END LOOP;

    -- 4. Every partition's row type closed to PUBLIC again: a restored dump recreates the daily
    --    partitions (not members of the extension) with their row types open.  Only those open
    --    (a REVOKE rewrites the type's catalog row even when it changes nothing).
    FOR r IN SELECT i.inhrelid::regclass AS part FROM pg_inherits i
               JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_type t ON t.oid = c.reltype
              WHERE i.inhparent = 'tenancy.request_logs'::regclass
                AND EXISTS (SELECT FROM aclexplode(coalesce(t.typacl, acldefault('T', t.typowner))) a
                             WHERE a.grantee = 0 AND a.privilege_type = 'USAGE') LOOP
        EXECUTE format('REVOKE USAGE ON TYPE %s FROM PUBLIC', r.part);
    END LOOP;

    PERFORM set_config('lock_timeout', caller_lock_timeout, true);
    RETURN jsonb_build_object('created', to_jsonb(created), 'moved_from_default', moved,
                              'dropped', to_jsonb(dropped), 'deleted_from_default', deleted,
                              'skipped', to_jsonb(skipped));
END
$$;

COMMENT ON FUNCTION tenancy.maintain_request_logs(interval, integer, timestamptz, interval) IS
    'Daily request_logs partitions: create ahead, move rows out of the default partition, drop past the retention';

CREATE OR REPLACE FUNCTION tenancy._seal_partition(part text)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    g oid;
BEGIN
    EXECUTE format('ALTER TABLE tenancy_private.%I ADD CONSTRAINT %I PRIMARY KEY (tenant_id, created_at, id)',
                   part, part || '_pkey');
    EXECUTE format('CREATE INDEX %I ON tenancy_private.%I (tenant_id, integration_id, created_at DESC)',
                   part || '_integration_idx', part);
    EXECUTE format('ALTER TABLE tenancy_private.%I ENABLE ROW LEVEL SECURITY', part);
    EXECUTE format('ALTER TABLE tenancy_private.%I FORCE ROW LEVEL SECURITY', part);
    EXECUTE format('REVOKE ALL ON tenancy_private.%I FROM PUBLIC, anon, authenticated, service_role', part);
    EXECUTE format('REVOKE USAGE ON TYPE tenancy_private.%I FROM PUBLIC', part);
    -- And what default privileges of the role running maintenance gave it, to anyone.
    FOR g IN SELECT x.grantee FROM pg_class c, aclexplode(c.relacl) x
              WHERE c.oid = format('tenancy_private.%I', part)::regclass AND x.grantee <> c.relowner LOOP
        EXECUTE format('REVOKE ALL ON tenancy_private.%I FROM %I', part, pg_get_userbyid(g));
    END LOOP;
    FOR g IN SELECT x.grantee FROM pg_class c, pg_type t, aclexplode(t.typacl) x
              WHERE c.oid = format('tenancy_private.%I', part)::regclass AND t.oid = c.reltype
                AND x.grantee NOT IN (t.typowner, 0) LOOP
        EXECUTE format('REVOKE ALL ON TYPE tenancy_private.%I FROM %I', part, pg_get_userbyid(g));
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION tenancy.list_api_keys()
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

-- ---------------------------------------------------------------------------------------------
-- Cache invalidation: for each row actually written (and TRUNCATE), also under replication
-- ---------------------------------------------------------------------------------------------
COMMENT ON FUNCTION tenancy.invalidate_caches() IS
    'Trigger: drop every backend''s cached copies (memberships, data keys, root key checks, pepper, API keys, actions'' field mapping lists) when the table changes';
DROP TRIGGER tenancy_invalidate_caches ON tenancy.tenants;
DROP TRIGGER tenancy_invalidate_caches ON tenancy.memberships;
DROP TRIGGER tenancy_invalidate_caches ON tenancy_private.data_keys;
DROP TRIGGER tenancy_invalidate_caches ON tenancy_private.root_keys;
DROP TRIGGER tenancy_invalidate_caches ON tenancy_private.peppers;
DROP TRIGGER tenancy_invalidate_caches ON tenancy.api_keys;
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

-- ---------------------------------------------------------------------------------------------
-- tenancy.jwt_secret stored where every role reads it (ALTER DATABASE/ROLE ... SET, a function's
-- SET): from 0.3.0 refused, and a session that finds one there refuses every pre_request.  Say so
-- now, at the upgrade (never the value).
-- ---------------------------------------------------------------------------------------------
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_db_role_setting s, pg_catalog.unnest(s.setconfig) c
               WHERE c LIKE 'tenancy.jwt\_secret=_%')
       OR EXISTS (SELECT FROM pg_catalog.pg_proc p, pg_catalog.unnest(p.proconfig) c
                  WHERE c LIKE 'tenancy.jwt\_secret=_%') THEN
        RAISE WARNING 'tenancy.jwt_secret is stored with ALTER DATABASE/ROLE ... SET or in a function''s SET clause, where every role can read it'
            USING DETAIL = 'A secret stored there is refused from 0.3.0 on, and pre_request refuses every request of a session that finds one (55000).',
                  HINT = 'Remove it (ALTER DATABASE/ROLE ... RESET tenancy.jwt_secret), rotate the secret, and set the new one in a file included from postgresql.conf.';
    END IF;
END
$$;

-- ---------------------------------------------------------------------------------------------
-- Citus: tenancy.distribute() (sql/citus.sql), and the audit trail's detach trigger function for
-- every major (PostgreSQL 14 had it; Citus needs it too)
-- ---------------------------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION tenancy._detach_subscription_audit() RETURNS trigger
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
-- Citus (docs/citus.md): tenancy.distribute() makes a database that has Citus a distributed one.
--
-- Where each table goes:
--   * reference tables, a copy on every node: what a node reads to check a context's authority
--     (tenants, memberships, API keys and their hashes), users, and the key material each node
--     derives its keys from (root key checks, the pepper, the tenants' wrapped data keys).  Every
--     node checks authority on its own copy, with no network round trip, and the cache triggers
--     on each copy empty that node's caches when a row changes (a write to a reference table
--     commits on every node).
--   * distributed by tenant_id, all colocated: everything else a tenant owns, request_logs with
--     its partitions.  A tenant's rows of every table live on one node, so its joins and
--     foreign keys stay on that node.

-- Citus refuses subqueries in the policies of its tables: each (SELECT tenancy.f(...)) (an
-- InitPlan, once per statement) becomes tenancy.f(...) (STABLE, evaluated per row; what it reads is
-- still one context per statement: src/context/statements.rs).  Raises when a policy of tbl still
-- has a subquery after that (a user's own policy that reads a table).
CREATE FUNCTION tenancy._citus_policies(tbl regclass)
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    pattern constant text := '\( SELECT (tenancy\.[a-z_]+\((?:[^()]|\([^()]*\))*\)) AS [a-z_]+\)';
    q text;
    c text;
BEGIN
    FOR p IN SELECT polname, pg_get_expr(polqual, polrelid) AS qual, pg_get_expr(polwithcheck, polrelid) AS chk
               FROM pg_policy WHERE polrelid = tbl LOOP
        q := regexp_replace(p.qual, pattern, '\1', 'g');
        c := regexp_replace(p.chk, pattern, '\1', 'g');
        IF q IS DISTINCT FROM p.qual OR c IS DISTINCT FROM p.chk THEN
            EXECUTE format('ALTER POLICY %I ON %s', p.polname, tbl)
                 || coalesce(' USING (' || q || ')', '') || coalesce(' WITH CHECK (' || c || ')', '');
        END IF;
    END LOOP;
    IF EXISTS (SELECT FROM pg_policy WHERE polrelid = tbl
                AND (pg_get_expr(polqual, polrelid) ~ '\(\s*SELECT\M' OR pg_get_expr(polwithcheck, polrelid) ~ '\(\s*SELECT\M')) THEN
        RAISE EXCEPTION 'a policy of % has a subquery, which Citus does not allow', tbl
            USING ERRCODE = 'feature_not_supported';
    END IF;
END
$$;
COMMENT ON FUNCTION tenancy._citus_policies(regclass) IS
    'Rewrite a table''s pg_tenancy policies without subqueries, as Citus requires';

-- Citus sends an INSERT's defaulted columns to the shard explicitly (PostgreSQL's rewriter adds
-- them to the statement, and Citus deparses that), so a role with INSERT on some columns only is
-- refused there: authenticated on jobs, which may not set status, progress, created_at or
-- updated_at.  distribute() grants those four, and this trigger, on every shard, gives them their
-- defaults again for anyone but service_role and superusers: what a member inserts is what it
-- inserts on one node.
CREATE FUNCTION tenancy._jobs_insert_defaults()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- USAGE: service_role's privileges are the caller's (as its column grants would be on one
    -- node); true for a superuser too.
    IF NOT pg_has_role(current_user, 'service_role', 'USAGE') THEN
        NEW.status := 'queued';
        NEW.progress := 0;
        NEW.created_at := now();
        NEW.updated_at := now();
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION tenancy._jobs_insert_defaults() IS
    'Citus: a member''s new job starts queued, whatever the statement Citus sends the shard says';

CREATE FUNCTION tenancy.distribute(reset_worker_logins boolean DEFAULT false)
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    -- Replicated to every node: what each node reads to check a context's authority (tenants,
    -- memberships, API keys) and the key material it derives keys from.  Writes to them commit
    -- on every node at once; every node's per-backend caches see them through the triggers on
    -- its own copy.
    reference_tables constant text[] := ARRAY[
        'tenancy.users', 'tenancy.tenants', 'tenancy.memberships', 'tenancy.api_keys',
        'tenancy_private.root_keys', 'tenancy_private.peppers', 'tenancy_private.data_keys',
        'tenancy_private.api_key_hashes'];
    -- Distributed by tenant_id, all colocated with the first: a tenant's rows of every table on
    -- one node.  In the order of their foreign keys.
    distributed_tables constant text[] := ARRAY[
        'tenancy.clients', 'tenancy.client_users', 'tenancy.projects', 'tenancy.integrations',
        'tenancy.actions', 'tenancy.integration_credentials', 'tenancy_private.credential_secrets',
        'tenancy.field_mappings', 'tenancy.request_logs', 'tenancy.subscriptions',
        'tenancy.subscription_audit', 'tenancy.jobs', 'tenancy.assets', 'tenancy_private.api_key_usage'];
    t text;
    made_reference text[] := '{}';
    made_distributed text[] := '{}';
    already text[] := '{}';
    colocate text := 'default';
    worker_logins text[] := '{}';
    revoked text[] := '{}';
    on_workers text[] := '{}';
    key_id text;
    w record;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE oid = current_user::regrole) THEN
        RAISE EXCEPTION 'tenancy.distribute() must be run by a superuser' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'Citus is not installed in this database'
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'shared_preload_libraries = ''citus,pg_tenancy'', then CREATE EXTENSION citus before CREATE EXTENSION pg_tenancy.';
    END IF;
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'tenancy.distribute() runs on the coordinator' USING ERRCODE = 'feature_not_supported';
    END IF;
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    -- Citus refuses subqueries in the policies of its tables: each (SELECT tenancy.f(...)) (an
    -- InitPlan, once per statement) becomes tenancy.f(...) (STABLE, once per row; what it reads
    -- is still one context per statement: src/context/statements.rs).
    FOREACH t IN ARRAY reference_tables || distributed_tables LOOP
        PERFORM tenancy._citus_policies(t::regclass);
    END LOOP;
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    PERFORM set_config('citus.enable_local_reference_table_foreign_keys', 'off', true);
    -- Citus refuses ON DELETE SET NULL (column) on a key that holds the distribution column: the
    -- audit trail's key to its subscription becomes NO ACTION, and the BEFORE DELETE trigger that
    -- PostgreSQL 14 uses detaches the audit rows first (same outcome: only subscription_id is
    -- cleared).
    IF EXISTS (SELECT FROM pg_constraint WHERE conname = 'subscription_audit_subscription_fkey'
                AND conrelid = 'tenancy.subscription_audit'::regclass AND confdeltype = 'n') THEN
        ALTER TABLE tenancy.subscription_audit DROP CONSTRAINT subscription_audit_subscription_fkey;
        ALTER TABLE tenancy.subscription_audit ADD CONSTRAINT subscription_audit_subscription_fkey
            FOREIGN KEY (tenant_id, subscription_id) REFERENCES tenancy.subscriptions (tenant_id, id);
        CREATE TRIGGER subscription_audit_detach BEFORE DELETE ON tenancy.subscriptions
            FOR EACH ROW EXECUTE FUNCTION tenancy._detach_subscription_audit();
    END IF;
    FOREACH t IN ARRAY reference_tables LOOP
        IF EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            already := already || t;
        ELSE
            PERFORM create_reference_table(t::regclass);
            made_reference := made_reference || t;
        END IF;
    END LOOP;
    FOREACH t IN ARRAY distributed_tables LOOP
        IF EXISTS (SELECT FROM pg_dist_partition WHERE logicalrelid = t::regclass) THEN
            already := already || t;
        ELSE
            -- API keys' last use is written by pg_tenancy as the superuser, inside the caller's
            -- transaction: in a colocation group of its own, so that Citus does not refuse the
            -- caller's own reads of the tenant's shards afterwards ("placements that were
            -- modified in this transaction by a different user").
            PERFORM create_distributed_table(t::regclass, 'tenant_id',
                colocate_with => CASE WHEN t = 'tenancy_private.api_key_usage' THEN 'none' ELSE colocate END);
            made_distributed := made_distributed || t;
        END IF;
        colocate := distributed_tables[1];
    END LOOP;
    -- A member's job: the columns Citus fills with their defaults, then the defaults again
    -- (tenancy._jobs_insert_defaults above).
    IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = 'tenancy.jobs'::regclass AND tgname = 'jobs_insert_defaults') THEN
        CREATE TRIGGER jobs_insert_defaults BEFORE INSERT ON tenancy.jobs
            FOR EACH ROW EXECUTE FUNCTION tenancy._jobs_insert_defaults();
    END IF;
    GRANT INSERT (status, progress, created_at, updated_at) ON tenancy.jobs TO authenticated;
    -- Citus runs a query's shard tasks on the workers over connections it opens as the role
    -- running the query, so the application roles log in to the workers (their NOLOGIN holds on
    -- the coordinator).  With a password only Citus has (pg_dist_authinfo, which only superusers
    -- read): a worker's pg_hba.conf that asks these roles for a password then admits no one else
    -- as them, and a backend logged in as one of them is one Citus opened, where the signed
    -- context is read (src/citus.rs).  Roles are the cluster's and pg_dist_authinfo is this
    -- database's: the password is derived from the root keyring every node and database shares
    -- (src/citus/logins.rs), so that every database of the cluster that distributes pg_tenancy
    -- gives Citus the same one.  Each node derives it itself: only the role and the root key's id
    -- travel, never a password.  A worker says which root key's password its role has, and that
    -- key is kept (the first database's); a password no key derives (set by hand, or under a key
    -- since removed from the keyring) is replaced only when asked (reset_worker_logins), as it
    -- locks out the databases that use it.
    FOREACH t IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = t) THEN
            CONTINUE;
        END IF;
        key_id := NULL;
        FOR w IN SELECT * FROM run_command_on_workers(format('SELECT tenancy._citus_login_key(%L)', t)) LOOP
            IF NOT w.success THEN
                RAISE EXCEPTION 'could not check role %''s login on worker %:%', t, w.nodename, w.nodeport
                    USING DETAIL = w.result, ERRCODE = 'connection_failure';
            END IF;
            IF w.result LIKE 'key:%' THEN
                key_id := coalesce(key_id, substr(w.result, 5));
            ELSIF w.result = 'unknown' AND NOT reset_worker_logins THEN
                RAISE EXCEPTION 'role % logs in to worker %:% with a password this database cannot derive from its root keyring', t, w.nodename, w.nodeport
                    USING ERRCODE = 'object_not_in_prerequisite_state',
                          DETAIL = 'Another database of this cluster set it under a root key that is no longer in the keyring, or it was set by hand; replacing it locks the databases that use it out of the workers until tenancy.distribute() runs there again.',
                          HINT = 'Call tenancy.distribute(reset_worker_logins => true) here, then tenancy.distribute() in every other database of the cluster that has pg_tenancy.';
            END IF;
        END LOOP;
        IF reset_worker_logins THEN
            key_id := NULL;
        END IF;
        -- Here, pg_dist_authinfo only; on the workers, the login too (and their pg_dist_authinfo,
        -- for the connections they open to each other).  Each call sets it again on every worker
        -- (a node added since gets it).
        key_id := tenancy._citus_set_login(t, key_id, false);
        FOR w IN SELECT * FROM run_command_on_workers(
                     format('SELECT tenancy._citus_set_login(%L, %L, true)', t, key_id)) LOOP
            IF NOT w.success THEN
                RAISE EXCEPTION 'could not let role % log in on worker %:%', t, w.nodename, w.nodeport
                    USING DETAIL = w.result, ERRCODE = 'connection_failure';
            END IF;
        END LOOP;
        worker_logins := worker_logins || t;
    END LOOP;
    -- Citus's functions that run any SQL on the workers as their caller: a second door to the
    -- shards, past the coordinator (which refuses a context pg_tenancy did not set).  Superusers
    -- keep them; grant them back to a role that needs them.
    FOREACH t IN ARRAY ARRAY['run_command_on_workers(text, boolean)', 'run_command_on_all_nodes(text, boolean, boolean)',
                             'run_command_on_coordinator(text, boolean)', 'run_command_on_shards(regclass, text, boolean)',
                             'run_command_on_placements(regclass, text, boolean)',
                             'run_command_on_colocated_placements(regclass, regclass, text, boolean)',
                             'master_run_on_worker(text[], integer[], text[], boolean)',
                             -- It connects, as its caller, to any host and port it is given.
                             'citus_check_connection_to_node(text, integer)',
                             -- Any lock mode on any table the caller may write, past the LOCK
                             -- guard (Citus sends it only for foreign tables).
                             'lock_relation_if_exists(text, text)',
                             -- Citus's: cancel or terminate a backend on any node by its global
                             -- pid (there, as the caller: every tenant's worker connections are
                             -- the same role).
                             'pg_cancel_backend(bigint)', 'pg_terminate_backend(bigint, bigint)'] LOOP
        IF to_regprocedure(t) IS NOT NULL THEN
            IF has_function_privilege('public', t, 'EXECUTE') THEN
                EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', t);
                revoked := revoked || t;
            END IF;
            on_workers := on_workers || format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', t);
        END IF;
    END LOOP;
    -- The same on every worker (GRANT and REVOKE on Citus's own functions are not propagated);
    -- and there, no application role reads another backend's query text (pg_stat_activity), nor
    -- cancels or terminates another backend: every member's worker connections log in as the
    -- same role (so pass the same-role check of pg_cancel_backend), and the text Citus sends
    -- holds the query's values and the signed context.
    on_workers := on_workers || ARRAY[
        'REVOKE SELECT ON pg_catalog.pg_stat_activity FROM PUBLIC',
        'REVOKE EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer), pg_catalog.pg_stat_get_backend_activity(integer) FROM PUBLIC',
        'GRANT SELECT ON pg_catalog.pg_stat_activity TO pg_read_all_stats',
        'GRANT EXECUTE ON FUNCTION pg_catalog.pg_stat_get_activity(integer), pg_catalog.pg_stat_get_backend_activity(integer) TO pg_read_all_stats',
        'REVOKE EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer), pg_catalog.pg_terminate_backend(integer, bigint) FROM PUBLIC',
        'GRANT EXECUTE ON FUNCTION pg_catalog.pg_cancel_backend(integer), pg_catalog.pg_terminate_backend(integer, bigint) TO pg_signal_backend'];
    FOR w IN SELECT * FROM run_command_on_workers(
                 'SET citus.enable_ddl_propagation = off; ' || array_to_string(on_workers, '; ')) LOOP
        IF NOT w.success THEN
            RAISE EXCEPTION 'could not revoke Citus''s functions on worker %:%', w.nodename, w.nodeport
                USING DETAIL = w.result, ERRCODE = 'connection_failure';
        END IF;
    END LOOP;
    RETURN jsonb_build_object('reference_tables', to_jsonb(made_reference),
                              'distributed_tables', to_jsonb(made_distributed),
                              'already_distributed', to_jsonb(already),
                              'roles_that_log_in_to_workers', to_jsonb(worker_logins),
                              'revoked_from_public', to_jsonb(revoked),
                              'revoked_on_workers', to_jsonb(on_workers));
END
$$;
COMMENT ON FUNCTION tenancy.distribute(boolean) IS
    'Citus: make pg_tenancy''s tables reference tables or distributed by tenant_id (superuser, on the coordinator; idempotent)';

-- The application roles' worker logins, derived on each node from the root keyring
-- (src/citus/logins.rs).  Superuser only: no grant.
CREATE FUNCTION tenancy."_citus_login_key"(
	"role" TEXT
) RETURNS TEXT
STRICT STABLE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_citus_login_key_wrapper';
CREATE FUNCTION tenancy."_citus_set_login"(
	"role" TEXT,
	"key_id" TEXT,
	"login" bool
) RETURNS TEXT
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_citus_set_login_wrapper';

-- ---------------------------------------------------------------------------------------------
-- Functions: nothing for PUBLIC; the new ones granted as a fresh install grants them
-- ---------------------------------------------------------------------------------------------
-- Made by this update, or moved into tenancy_private: no grant but the owner's, whatever default
-- privileges (ALTER DEFAULT PRIVILEGES) the role running it has; the grants below are then the
-- only ones (section 9).
DO $new_objects$
DECLARE
    f regprocedure;
    r regclass;
    a record;
BEGIN
    FOREACH f IN ARRAY ARRAY['tenancy.current_tenant_for(text[])',
        'tenancy.jwt_keys(text)',
        'tenancy.add_member(uuid, text)',
        'tenancy.set_member_role(uuid, text)',
        'tenancy.remove_member(uuid)',
        'tenancy._lock_request_log_maintenance()',
        'tenancy.redact(jsonb, boolean)',
        'tenancy.redaction_rules()',
        'tenancy._isolate(regclass, text[], text[], text[], text[], boolean, boolean)',
        'tenancy.maintain_request_logs(interval, integer, timestamptz, interval)',
        'tenancy._detach_subscription_audit()',
        'tenancy._citus_policies(regclass)',
        'tenancy._jobs_insert_defaults()',
        'tenancy._citus_login_key(text)',
        'tenancy._citus_set_login(text, text, boolean)',
        'tenancy.distribute(boolean)']::regprocedure[] LOOP
        FOR a IN SELECT x.grantee FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) x
                  WHERE p.oid = f AND x.grantee NOT IN (p.proowner, 0) LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %I', f, pg_catalog.pg_get_userbyid(a.grantee));
        END LOOP;
    END LOOP;
    -- Every relation of tenancy_private: the new ones, and those moved there (no grant on them
    -- was ever the documented way in).
    FOREACH r IN ARRAY ARRAY(SELECT c.oid::regclass FROM pg_catalog.pg_class c
                              WHERE c.relnamespace = 'tenancy_private'::regnamespace AND c.relkind IN ('r', 'p')) LOOP
        FOR a IN SELECT x.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) x
                  WHERE c.oid = r AND x.grantee <> c.relowner LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM %s', r,
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END);
        END LOOP;
        FOR a IN SELECT x.grantee FROM pg_catalog.pg_class c, pg_catalog.pg_type t, pg_catalog.aclexplode(t.typacl) x
                  WHERE c.oid = r AND t.oid = c.reltype AND x.grantee NOT IN (t.typowner, 0) LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON TYPE %s FROM %I', r, pg_catalog.pg_get_userbyid(a.grantee));
        END LOOP;
    END LOOP;
    FOR a IN SELECT n.nspname, x.grantee FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) x
              WHERE n.nspname IN ('tenancy_private') AND x.grantee <> n.nspowner LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM %s', a.nspname,
            CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END);
    END LOOP;
END
$new_objects$;

REVOKE ALL ON FUNCTION
    tenancy.current_tenant_for(text[]), tenancy.add_member(uuid, text), tenancy.set_member_role(uuid, text),
    tenancy.remove_member(uuid), tenancy._lock_request_log_maintenance(), tenancy._isolate(regclass, text[], text[], text[], text[], boolean, boolean),
    tenancy.maintain_request_logs(interval, integer, timestamptz, interval), tenancy.jwt_keys(text),
    tenancy.redact(jsonb, boolean), tenancy.redaction_rules(), tenancy._detach_subscription_audit(),
    tenancy._citus_policies(regclass), tenancy._jobs_insert_defaults(), tenancy._citus_login_key(text),
    tenancy._citus_set_login(text, text, boolean), tenancy.distribute(boolean)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.current_tenant_for(text[]) TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION
    tenancy.add_member(uuid, text), tenancy.set_member_role(uuid, text), tenancy.remove_member(uuid)
    TO authenticated, service_role;
GRANT EXECUTE ON FUNCTION tenancy.redact(jsonb, boolean), tenancy.redaction_rules()
    TO authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- 7. Actions validate their inputs and outputs (JSON Schema) and apply their field mappings
--    (src/actions/).  Schemas and mappings are checked when written (CHECK constraints, 23514);
--    rows written before are checked here, and a table whose old rows break its constraint keeps
--    it NOT VALID, with a WARNING saying what to correct (never the rows' values).
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION tenancy."jsonschema_is_valid"(
	"schema" jsonb
) RETURNS bool
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'jsonschema_is_valid_wrapper';

CREATE FUNCTION tenancy."jsonb_matches_schema"(
	"schema" jsonb,
	"instance" jsonb
) RETURNS bool
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'jsonb_matches_schema_wrapper';

CREATE FUNCTION tenancy."jsonschema_validation_errors"(
	"schema" jsonb,
	"instance" jsonb
) RETURNS jsonb
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'jsonschema_validation_errors_wrapper';

CREATE FUNCTION tenancy."_jsonschema_check"(
	"schema" jsonb,
	"column" TEXT
) RETURNS bool
IMMUTABLE STRICT PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_jsonschema_check_wrapper';

CREATE FUNCTION tenancy."validate_action_input"(
	"action_id" uuid,
	"input" jsonb
) RETURNS jsonb
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'validate_action_input_wrapper';

CREATE FUNCTION tenancy."check_action_input"(
	"action_id" uuid,
	"input" jsonb
) RETURNS void
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'check_action_input_wrapper';

CREATE FUNCTION tenancy."validate_action_output"(
	"action_id" uuid,
	"output" jsonb
) RETURNS jsonb
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'validate_action_output_wrapper';

CREATE FUNCTION tenancy."check_action_output"(
	"action_id" uuid,
	"output" jsonb
) RETURNS void
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'check_action_output_wrapper';

CREATE FUNCTION tenancy."_field_mapping_check"(
	"source_path" TEXT,
	"target_path" TEXT,
	"transform_config" jsonb
) RETURNS bool
IMMUTABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', '_field_mapping_check_wrapper';

CREATE FUNCTION tenancy."apply_field_mappings"(
	"action_id" uuid,
	"direction" tenancy.mapping_direction,
	"payload" jsonb
) RETURNS jsonb
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c
AS 'MODULE_PATHNAME', 'apply_field_mappings_wrapper';

-- seed_demo() writes field mappings with paths the new constraint takes.
CREATE OR REPLACE FUNCTION tenancy.seed_demo()
    RETURNS jsonb
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    acme   constant uuid := 'a0000000-0000-4000-8000-000000000001';
    globex constant uuid := 'b0000000-0000-4000-8000-000000000002';
    u record;
    t uuid;
    slack uuid;
BEGIN
    INSERT INTO tenancy.users (id, email, name) VALUES
        ('00000000-0000-4000-8000-0000000000a1', 'alice@acme.test',   'Alice (acme owner, globex member)'),
        ('00000000-0000-4000-8000-0000000000a2', 'bob@acme.test',     'Bob (acme admin)'),
        ('00000000-0000-4000-8000-0000000000a3', 'carol@acme.test',   'Carol (acme manager)'),
        ('00000000-0000-4000-8000-0000000000a4', 'dave@acme.test',    'Dave (acme member)'),
        ('00000000-0000-4000-8000-0000000000a5', 'erin@client.test',  'Erin (acme client)'),
        ('00000000-0000-4000-8000-0000000000b1', 'frank@globex.test', 'Frank (globex owner)'),
        ('00000000-0000-4000-8000-0000000000b2', 'grace@globex.test', 'Grace (globex admin)'),
        ('00000000-0000-4000-8000-0000000000b3', 'heidi@globex.test', 'Heidi (globex manager)'),
        ('00000000-0000-4000-8000-0000000000b4', 'ivan@globex.test',  'Ivan (globex member)'),
        ('00000000-0000-4000-8000-0000000000b5', 'judy@client.test',  'Judy (globex client)')
    ON CONFLICT DO NOTHING;

    INSERT INTO tenancy.tenants (id, slug, name, email, owner_user_id, settings) VALUES
        (acme,   'acme',   'Acme Agency', 'ops@acme.test',   '00000000-0000-4000-8000-0000000000a1', '{"plan": "pro"}'),
        (globex, 'globex', 'Globex Corp', 'ops@globex.test', '00000000-0000-4000-8000-0000000000b1', '{"plan": "studio"}')
    ON CONFLICT DO NOTHING;

    INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES
        (acme,   '00000000-0000-4000-8000-0000000000a1', 'owner'),
        (acme,   '00000000-0000-4000-8000-0000000000a2', 'admin'),
        (acme,   '00000000-0000-4000-8000-0000000000a3', 'manager'),
        (acme,   '00000000-0000-4000-8000-0000000000a4', 'member'),
        (acme,   '00000000-0000-4000-8000-0000000000a5', 'client'),
        (globex, '00000000-0000-4000-8000-0000000000b1', 'owner'),
        (globex, '00000000-0000-4000-8000-0000000000b2', 'admin'),
        (globex, '00000000-0000-4000-8000-0000000000b3', 'manager'),
        (globex, '00000000-0000-4000-8000-0000000000b4', 'member'),
        (globex, '00000000-0000-4000-8000-0000000000b5', 'client'),
        (globex, '00000000-0000-4000-8000-0000000000a1', 'member')
    ON CONFLICT DO NOTHING;

    -- The same shapes in both tenants; ids differ by tenant (last hex digit of the first group).
    FOREACH t IN ARRAY ARRAY[acme, globex] LOOP
        slack := (CASE WHEN t = acme THEN 'a1' ELSE 'b1' END || '000000-0000-4000-8000-000000000101')::uuid;
        INSERT INTO tenancy.integrations (tenant_id, id, name, slug, description, documentation_url,
                                          auth_type, auth_config, status, tags) VALUES
            (t, slack, 'Slack (mock)', 'slack', 'Mock Slack workspace API', 'https://api.slack.com/methods',
             'oauth2', '{"authorizationUrl": "https://slack.com/oauth/v2/authorize", "scopes": ["chat:write", "channels:read"]}',
             'active', '{chat,messaging}')
        ON CONFLICT DO NOTHING;
        INSERT INTO tenancy.actions (tenant_id, id, integration_id, name, slug, http_method, endpoint_template,
                                     input_schema, output_schema, cacheable, cache_ttl_seconds, retry_config)
        SELECT t, (left(slack::text, 2) || lpad(n::text, 6, '0') || '-0000-4000-8000-000000000201')::uuid, slack,
               a.name, a.slug, a.method::tenancy.http_method, a.endpoint, a.input::jsonb, '{"type": "object"}', a.cacheable,
               CASE WHEN a.cacheable THEN 60 END, '{"maxAttempts": 3, "backoffMs": 200}'
        FROM (VALUES
            (1, 'Send message',   'send-message',   'POST', '/chat.postMessage',
             '{"type": "object", "required": ["channel", "text"], "properties": {"channel": {"type": "string"}, "text": {"type": "string"}}}', false),
            (2, 'List channels',  'list-channels',  'GET',  '/conversations.list', '{"type": "object"}', true),
            (3, 'Get user',       'get-user',       'GET',  '/users.info',
             '{"type": "object", "required": ["user"], "properties": {"user": {"type": "string"}}}', true),
            (4, 'Create channel', 'create-channel', 'POST', '/conversations.create',
             '{"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}', false),
            (5, 'List users',     'list-users',     'GET',  '/users.list', '{"type": "object"}', true)
        ) AS a(n, name, slug, method, endpoint, input, cacheable)
        ON CONFLICT DO NOTHING;
        INSERT INTO tenancy.field_mappings (tenant_id, action_id, source_path, target_path, transform_config, direction)
        SELECT t, (left(slack::text, 2) || '000001-0000-4000-8000-000000000201')::uuid, m.src, m.dst,
               m.config::jsonb, m.dir::tenancy.mapping_direction
        FROM (VALUES ('$.message', '$.text', NULL, 'input'),
                     ('$.room', '$.channel', '{"trim": true, "case": "lower"}', 'input'),
                     ('$.ts', '$.messageId', '{"type": "string"}', 'output'))
             AS m(src, dst, config, dir)
        ON CONFLICT DO NOTHING;

        INSERT INTO tenancy.subscriptions (tenant_id, id, user_id, stripe_subscription_id, stripe_customer_id,
                                           tier, status, current_period_start, current_period_end)
        VALUES (t, (left(slack::text, 2) || '000000-0000-4000-8000-000000000301')::uuid,
                CASE WHEN t = acme THEN '00000000-0000-4000-8000-0000000000a1'::uuid
                     ELSE '00000000-0000-4000-8000-0000000000b1'::uuid END,
                'sub_demo_' || left(slack::text, 2), 'cus_demo_' || left(slack::text, 2),
                CASE WHEN t = acme THEN 'pro' ELSE 'studio' END, 'active',
                '2026-11-01T00:00:00Z', '2026-12-01T00:00:00Z')
        ON CONFLICT DO NOTHING;
        INSERT INTO tenancy.subscription_audit (tenant_id, id, subscription_id, action, stripe_event_id, details)
        VALUES (t, (left(slack::text, 2) || '000000-0000-4000-8000-000000000302')::uuid,
                (left(slack::text, 2) || '000000-0000-4000-8000-000000000301')::uuid,
                'subscription.created', 'evt_demo_' || left(slack::text, 2), '{"source": "seed_demo"}')
        ON CONFLICT DO NOTHING;

        INSERT INTO tenancy.jobs (tenant_id, id, user_id, job_type, status, progress, parameters, result, completed_at)
        VALUES
            (t, (left(slack::text, 2) || '000000-0000-4000-8000-000000000401')::uuid, NULL, 'export', 'completed', 100,
             '{"format": "csv"}', '{"rows": 42}', '2026-11-02T10:00:00Z'),
            (t, (left(slack::text, 2) || '000000-0000-4000-8000-000000000402')::uuid, NULL, 'import', 'processing', 40,
             '{"source": "s3://demo/import.csv"}', NULL, NULL)
        ON CONFLICT DO NOTHING;
        INSERT INTO tenancy.assets (tenant_id, id, job_id, asset_type, url, storage_path, file_size, metadata)
        VALUES (t, (left(slack::text, 2) || '000000-0000-4000-8000-000000000501')::uuid,
                (left(slack::text, 2) || '000000-0000-4000-8000-000000000401')::uuid,
                'csv', 'https://files.example.test/' || left(slack::text, 2) || '/export.csv',
                left(slack::text, 2) || '/exports/export.csv', 2048, '{"rows": 42}')
        ON CONFLICT DO NOTHING;

        INSERT INTO tenancy.request_logs (tenant_id, id, integration_id, action_id, request_summary, response_summary,
                                          status_code, latency_ms, retry_count, created_at)
        SELECT t, (left(slack::text, 2) || lpad(n::text, 6, '0') || '-0000-4000-8000-000000000601')::uuid, slack,
               (left(slack::text, 2) || '000002-0000-4000-8000-000000000201')::uuid,
               '{"method": "GET", "path": "/conversations.list"}', '{"ok": true}',
               CASE WHEN n % 5 = 0 THEN 429 ELSE 200 END, 20 + n * 7, CASE WHEN n % 5 = 0 THEN 1 ELSE 0 END,
               '2026-11-20T12:00:00Z'::timestamptz + n * interval '1 minute'
        FROM generate_series(1, 10) n
        ON CONFLICT DO NOTHING;
    END LOOP;

    INSERT INTO tenancy.clients (tenant_id, id, name, email) VALUES
        (acme,   'a2000000-0000-4000-8000-000000000701', 'Initech',  'it@initech.test'),
        (acme,   'a2000000-0000-4000-8000-000000000702', 'Umbrella', 'hello@umbrella.test'),
        (globex, 'b2000000-0000-4000-8000-000000000701', 'Hooli',    'team@hooli.test')
    ON CONFLICT DO NOTHING;
    INSERT INTO tenancy.client_users (tenant_id, client_id, user_id) VALUES
        (acme,   'a2000000-0000-4000-8000-000000000701', '00000000-0000-4000-8000-0000000000a5'),
        (globex, 'b2000000-0000-4000-8000-000000000701', '00000000-0000-4000-8000-0000000000b5')
    ON CONFLICT DO NOTHING;
    INSERT INTO tenancy.projects (tenant_id, id, client_id, name, status, start_date, due_date) VALUES
        (acme,   'a3000000-0000-4000-8000-000000000801', 'a2000000-0000-4000-8000-000000000701', 'Website relaunch', 'active',   '2026-10-01', '2026-12-15'),
        (acme,   'a3000000-0000-4000-8000-000000000802', 'a2000000-0000-4000-8000-000000000702', 'Brand audit',      'planning', NULL, NULL),
        (globex, 'b3000000-0000-4000-8000-000000000801', 'b2000000-0000-4000-8000-000000000701', 'Data platform',    'active',   '2026-09-01', '2027-03-01')
    ON CONFLICT DO NOTHING;

    RETURN jsonb_build_object(
        'tenants', jsonb_build_object('acme', acme, 'globex', globex),
        'users', (SELECT jsonb_object_agg(split_part(email, '@', 1), id ORDER BY email)
                  FROM tenancy.users WHERE email LIKE '%.test'));
END
$$;

-- The demo's own mappings as 0.2.0's seed_demo() wrote them (its fixed action ids, these exact
-- paths, no transform), corrected as 0.3.0's writes them.  No other row is changed.
UPDATE tenancy.field_mappings m
   SET source_path = v.src, target_path = v.dst, transform_config = v.config::jsonb
  FROM (VALUES ('$.message', 'text',       '$.message', '$.text',      NULL),
               ('$.room',    'channel',    '$.room',    '$.channel',   '{"trim": true, "case": "lower"}'),
               ('ts',        '$.messageId', '$.ts',     '$.messageId', '{"type": "string"}'))
       AS v(old_src, old_dst, src, dst, config)
 WHERE m.action_id IN ('a1000001-0000-4000-8000-000000000201', 'b1000001-0000-4000-8000-000000000201')
   AND m.source_path = v.old_src AND m.target_path = v.old_dst AND m.transform_config IS NULL;

ALTER TABLE tenancy.actions
    ADD CONSTRAINT actions_input_schema_valid CHECK (tenancy._jsonschema_check(input_schema, 'input_schema') IS NOT FALSE) NOT VALID,
    ADD CONSTRAINT actions_output_schema_valid CHECK (tenancy._jsonschema_check(output_schema, 'output_schema') IS NOT FALSE) NOT VALID;
ALTER TABLE tenancy.field_mappings
    ADD CONSTRAINT field_mappings_valid
    CHECK (tenancy._field_mapping_check(source_path, target_path, transform_config) IS NOT FALSE) NOT VALID;
DO $$
DECLARE
    c record;
BEGIN
    FOR c IN SELECT * FROM (VALUES ('actions', 'actions_input_schema_valid'),
                                   ('actions', 'actions_output_schema_valid'),
                                   ('field_mappings', 'field_mappings_valid')) AS v(tbl, con) LOOP
        BEGIN
            EXECUTE format('ALTER TABLE tenancy.%I VALIDATE CONSTRAINT %I', c.tbl, c.con);
        EXCEPTION WHEN check_violation THEN
            RAISE WARNING 'tenancy.%: rows written before 0.3.0 break its new constraint %', c.tbl, c.con
                USING DETAIL = 'The first one: ' || SQLERRM || '.  Until they are corrected, a dump of this database does not restore (a fresh install checks every row it loads).',
                      HINT = format('New and changed rows are checked already.  Correct the old ones, then run ALTER TABLE tenancy.%I VALIDATE CONSTRAINT %I.', c.tbl, c.con);
        END;
    END LOOP;
END
$$;

-- Made by this update: no grant but the owner's yet, whatever default privileges (ALTER DEFAULT
-- PRIVILEGES) the role running it has; the grants below are then the only ones (section 9).
DO $new_action_functions$
DECLARE
    f regprocedure;
    r regclass;
    a record;
BEGIN
    FOREACH f IN ARRAY ARRAY['tenancy.jsonschema_is_valid(jsonb)',
        'tenancy.jsonb_matches_schema(jsonb, jsonb)',
        'tenancy.jsonschema_validation_errors(jsonb, jsonb)',
        'tenancy._jsonschema_check(jsonb, text)',
        'tenancy.validate_action_input(uuid, jsonb)',
        'tenancy.check_action_input(uuid, jsonb)',
        'tenancy.validate_action_output(uuid, jsonb)',
        'tenancy.check_action_output(uuid, jsonb)',
        'tenancy.apply_field_mappings(uuid, tenancy.mapping_direction, jsonb)',
        'tenancy._field_mapping_check(text, text, jsonb)']::regprocedure[] LOOP
        FOR a IN SELECT x.grantee FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) x
                  WHERE p.oid = f AND x.grantee NOT IN (p.proowner, 0) LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON FUNCTION %s FROM %I', f, pg_catalog.pg_get_userbyid(a.grantee));
        END LOOP;
    END LOOP;
    FOREACH r IN ARRAY ARRAY[]::regclass[] LOOP
        FOR a IN SELECT x.grantee FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) x
                  WHERE c.oid = r AND x.grantee <> c.relowner LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON TABLE %s FROM %s', r,
                CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END);
        END LOOP;
        FOR a IN SELECT x.grantee FROM pg_catalog.pg_class c, pg_catalog.pg_type t, pg_catalog.aclexplode(t.typacl) x
                  WHERE c.oid = r AND t.oid = c.reltype AND x.grantee NOT IN (t.typowner, 0) LOOP
            EXECUTE pg_catalog.format('REVOKE ALL ON TYPE %s FROM %I', r, pg_catalog.pg_get_userbyid(a.grantee));
        END LOOP;
    END LOOP;
    FOR a IN SELECT n.nspname, x.grantee FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) x
              WHERE n.nspname IN (NULL) AND x.grantee <> n.nspowner LOOP
        EXECUTE pg_catalog.format('REVOKE ALL ON SCHEMA %I FROM %s', a.nspname,
            CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END);
    END LOOP;
END
$new_action_functions$;

REVOKE ALL ON FUNCTION
    tenancy.jsonschema_is_valid(jsonb), tenancy.jsonb_matches_schema(jsonb, jsonb),
    tenancy.jsonschema_validation_errors(jsonb, jsonb), tenancy._jsonschema_check(jsonb, text),
    tenancy.validate_action_input(uuid, jsonb), tenancy.check_action_input(uuid, jsonb),
    tenancy.validate_action_output(uuid, jsonb), tenancy.check_action_output(uuid, jsonb),
    tenancy.apply_field_mappings(uuid, tenancy.mapping_direction, jsonb),
    tenancy._field_mapping_check(text, text, jsonb)
    FROM PUBLIC;
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
