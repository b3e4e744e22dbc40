-- The data model's rules, checked from the catalog.
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();

SELECT has_schema('tenancy');
SELECT tables_are('tenancy', ARRAY[
    'tenants', 'users', 'memberships', 'api_keys', 'clients', 'client_users', 'projects', 'integrations',
    'actions', 'integration_credentials', 'field_mappings', 'request_logs',
    'subscriptions', 'subscription_audit', 'jobs', 'assets'],
    'exactly the tables of the model');
SELECT has_schema('tenancy_private');
SELECT tables_are('tenancy_private', ARRAY['root_keys', 'data_keys', 'peppers', 'api_key_usage', 'api_key_hashes',
    'credential_secrets', 'request_logs_default'],
    'the internal tables, the secret material and request_logs'' partitions are in the private schema');
-- No application role can use the private schema: not read, lock, name a type of, or list it.
SELECT is((SELECT array_agg(r ORDER BY r) FROM unnest(ARRAY['anon', 'authenticated', 'service_role', 'public']) r
            WHERE has_schema_privilege(CASE WHEN r = 'public' THEN 'anon' ELSE r END, 'tenancy_private', 'USAGE')
               OR (r = 'public' AND EXISTS (SELECT FROM pg_namespace n, aclexplode(n.nspacl) a
                                             WHERE n.nspname = 'tenancy_private' AND a.grantee = 0))),
          NULL, 'no USAGE on tenancy_private for anon, authenticated, service_role or PUBLIC');
-- What code generators read (drizzle-kit pull, PostgREST's OpenAPI, supabase gen types): only types
-- they map.  No domain (generators cannot name one), no bytea (secret material is private).
SELECT is((SELECT array_agg(format('%s.%s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY 1)
             FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             JOIN pg_type t ON t.oid = a.atttypid
            WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p')
              AND (t.typtype = 'd' OR a.atttypid = 'bytea'::regtype)),
          NULL, 'no column of schema tenancy is a domain or bytea');
SELECT is((SELECT array_agg(t.typname::text) FROM pg_type t
            WHERE t.typnamespace = 'tenancy'::regnamespace AND t.typtype = 'd'), ARRAY['slug'],
          'the one domain, tenancy.slug, is for users'' own tables (none of the extension''s columns is of it)');
SELECT enums_are('tenancy', ARRAY['tenant_status', 'member_role', 'auth_type', 'integration_status',
    'credential_type', 'credential_status', 'http_method', 'mapping_direction']);
SELECT enum_has_labels('tenancy', 'auth_type', ARRAY['oauth2', 'api_key', 'basic', 'bearer', 'custom_header']);
SELECT enum_has_labels('tenancy', 'integration_status', ARRAY['draft', 'active', 'error', 'disabled']);
SELECT enum_has_labels('tenancy', 'credential_type', ARRAY['oauth2_tokens', 'api_key', 'basic', 'bearer']);
SELECT enum_has_labels('tenancy', 'credential_status', ARRAY['active', 'expired', 'revoked', 'needs_reauth']);
SELECT enum_has_labels('tenancy', 'http_method', ARRAY['GET', 'POST', 'PUT', 'PATCH', 'DELETE']);
SELECT enum_has_labels('tenancy', 'mapping_direction', ARRAY['input', 'output']);
SELECT enum_has_labels('tenancy', 'member_role', ARRAY['owner', 'admin', 'manager', 'member', 'client']);

-- Every column the seeds name.
SELECT columns_are('tenancy', 'tenants', ARRAY['id', 'slug', 'name', 'email', 'status', 'settings', 'owner_user_id', 'created_at', 'updated_at']);
SELECT columns_are('tenancy', 'users', ARRAY['id', 'email', 'name', 'avatar_url', 'subscription_tier', 'subscription_status',
    'monthly_usage', 'usage_reset_at', 'created_at', 'updated_at', 'is_sso_user']);
SELECT columns_are('tenancy', 'integrations', ARRAY['tenant_id', 'id', 'name', 'slug', 'description', 'documentation_url',
    'auth_type', 'auth_config', 'status', 'tags', 'metadata', 'created_at', 'updated_at']);
SELECT columns_are('tenancy', 'actions', ARRAY['tenant_id', 'id', 'integration_id', 'name', 'slug', 'description', 'http_method',
    'endpoint_template', 'input_schema', 'output_schema', 'pagination_config', 'retry_config', 'cacheable',
    'cache_ttl_seconds', 'metadata', 'created_at', 'updated_at']);
SELECT columns_are('tenancy', 'integration_credentials', ARRAY['tenant_id', 'id', 'integration_id', 'credential_type',
    'expires_at', 'scopes', 'status', 'created_at', 'updated_at']);
SELECT columns_are('tenancy_private', 'credential_secrets', ARRAY['tenant_id', 'credential_id', 'encrypted_data',
    'encrypted_refresh_token']);
SELECT col_type_is('tenancy_private', 'credential_secrets', 'encrypted_data', 'bytea', 'encrypted_data is bytea');
SELECT col_type_is('tenancy_private', 'credential_secrets', 'encrypted_refresh_token', 'bytea', 'encrypted_refresh_token is bytea');
SELECT columns_are('tenancy', 'api_keys', ARRAY['tenant_id', 'id', 'name', 'prefix', 'environment', 'scopes', 'expires_at',
    'revoked_at', 'replaced_by', 'created_by', 'created_at', 'updated_at']);
SELECT columns_are('tenancy_private', 'api_key_hashes', ARRAY['tenant_id', 'key_id', 'key_hash']);
SELECT columns_are('tenancy', 'field_mappings', ARRAY['tenant_id', 'id', 'action_id', 'source_path', 'target_path',
    'transform_config', 'direction', 'created_at', 'updated_at']);
SELECT columns_are('tenancy', 'request_logs', ARRAY['tenant_id', 'id', 'integration_id', 'action_id', 'api_key_id',
    'request_summary', 'response_summary', 'status_code', 'latency_ms', 'retry_count', 'error', 'created_at']);
SELECT columns_are('tenancy', 'subscriptions', ARRAY['tenant_id', 'id', 'user_id', 'stripe_subscription_id', 'stripe_customer_id',
    'tier', 'status', 'current_period_start', 'current_period_end', 'cancel_at_period_end', 'created_at', 'updated_at']);
SELECT columns_are('tenancy', 'jobs', ARRAY['tenant_id', 'id', 'user_id', 'job_type', 'status', 'progress', 'error_message',
    'parameters', 'result', 'created_at', 'updated_at', 'completed_at']);
SELECT columns_are('tenancy', 'assets', ARRAY['tenant_id', 'id', 'job_id', 'user_id', 'asset_type', 'url', 'storage_path',
    'file_size', 'metadata', 'created_at']);
SELECT columns_are('tenancy', 'subscription_audit', ARRAY['tenant_id', 'id', 'subscription_id', 'user_id', 'action',
    'stripe_event_id', 'details', 'created_at']);

-- Tenant-owned tables (of both schemas): tenant_id NOT NULL, primary key led by tenant_id, every UNIQUE includes it.
SELECT is(
    (SELECT array_agg(c.relname::text ORDER BY c.relname) FROM pg_class c
     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
     WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND c.relkind IN ('r', 'p') AND NOT a.attnotnull),
    NULL, 'tenant_id is NOT NULL everywhere');
SELECT is(
    (SELECT array_agg(con.conrelid::regclass::text ORDER BY con.conrelid::regclass::text) FROM pg_constraint con
     JOIN pg_class c ON c.oid = con.conrelid
     WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND con.contype = 'p' AND NOT c.relispartition
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
       AND (SELECT attname FROM pg_attribute WHERE attrelid = c.oid AND attnum = con.conkey[1]) <> 'tenant_id'),
    NULL, 'every tenant-owned primary key starts with tenant_id');
SELECT is(
    (SELECT array_agg(con.conname::text ORDER BY con.conname::text) FROM pg_constraint con
     JOIN pg_class c ON c.oid = con.conrelid
     WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND con.contype = 'u' AND NOT c.relispartition
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
       AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                       AND a.attnum = ANY (con.conkey))),
    NULL, 'every UNIQUE constraint of a tenant-owned table includes tenant_id');
SELECT is(
    (SELECT array_agg(con.conname::text ORDER BY con.conname::text) FROM pg_constraint con
     JOIN pg_class child ON child.oid = con.conrelid
     WHERE con.contype = 'f' AND child.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND NOT child.relispartition
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.confrelid AND a.attname = 'tenant_id')
       AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = con.conrelid AND a.attname = 'tenant_id'
                       AND a.attnum = ANY (con.conkey))),
    NULL, 'every foreign key to a tenant-owned table is composite, through tenant_id');

-- Indexes the seeds' queries need.
SELECT has_index('tenancy', 'integrations', 'integrations_tags_idx', 'tags', 'GIN index on integration tags');
SELECT is((SELECT amname::text FROM pg_class i JOIN pg_am am ON am.oid = i.relam WHERE i.oid = 'tenancy.integrations_tags_idx'::regclass),
          'gin', 'integrations_tags_idx is a GIN index');
SELECT ok((SELECT indpred IS NOT NULL FROM pg_index WHERE indexrelid = 'tenancy.integration_credentials_expiring_idx'::regclass),
          'the credentials expiry index is partial (active only)');
SELECT has_index('tenancy_private', 'request_logs_default', 'request_logs_default_pkey', ARRAY['tenant_id', 'created_at', 'id'],
                 'request logs by tenant and time (each partition has the key; see sql/schema.sql)');
SELECT is((SELECT count(*) FROM pg_index WHERE indrelid = 'tenancy.request_logs'::regclass), 0::bigint,
          'the partitioned parent has no index of its own, so a dump of its daily partitions restores');
SELECT is((SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = 'tenancy.request_logs'::regclass), 'r',
          'request_logs is range-partitioned');

-- The index rule (sql/schema.sql): every index a member can reach, directly or through a
-- partitioned parent, leads with the column its policy pins.  A new index that does not fails here.
SELECT set_eq(
    $$SELECT i.indexrelid::regclass::text
        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0]
       WHERE c.relnamespace = 'tenancy'::regnamespace
         AND has_any_column_privilege('authenticated', coalesce(pg_partition_root(c.oid), c.oid), 'SELECT')
         AND a.attname IS DISTINCT FROM 'tenant_id'
         AND NOT (c.relname IN ('tenants', 'users') AND a.attname IS NOT DISTINCT FROM 'id')$$,
    ARRAY['tenancy.tenants_slug_key', 'tenancy.memberships_user_id_idx',
          'tenancy.tenants_email_key', 'tenancy.users_email_key', 'tenancy.integrations_tags_idx'],
    'every index a member can reach leads with tenant_id (or the id its policy pins), but the documented five');
SELECT set_eq('SELECT index_name::text FROM tenancy.index_exposures()',
              ARRAY['tenancy.tenants_slug_key', 'tenancy.memberships_user_id_idx'],
              'index_exposures() reports the two global keys, and not the expression or GIN indexes');
SELECT ok(NOT (SELECT proleakproof FROM pg_proc WHERE oid = 'lower(text)'::regprocedure),
          'lower() is not leakproof: the lower(email) indexes run after the policy');
SELECT ok(NOT (SELECT p.proleakproof FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
                WHERE o.oid = '@>(anyarray,anyarray)'::regoperator)
          AND NOT (SELECT p.proleakproof FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
                    WHERE o.oid = '&&(anyarray,anyarray)'::regoperator),
          'array containment and overlap are not leakproof: the tags index runs after the policy');

-- CHECK constraints (each a clear error with SQLSTATE 23514).
SELECT throws_ok($$INSERT INTO tenancy.tenants (slug, name) VALUES ('Not A Slug', 'x')$$, '23514', NULL, 'slug must be lower-case and hyphenated');
SELECT throws_ok($$INSERT INTO tenancy.tenants (slug, name) VALUES ('-x', 'x')$$, '23514', NULL, 'slug cannot start with a hyphen');
SELECT throws_ok($$INSERT INTO tenancy.tenants (slug, name) VALUES ('a--b', 'x')$$, '23514', NULL, 'slug cannot double a hyphen');
SELECT throws_ok($$INSERT INTO tenancy.tenants (slug, name) VALUES (repeat('a', 64), 'x')$$, '23514', NULL, 'slug is at most 63 characters');
SELECT lives_ok($$INSERT INTO tenancy.tenants (slug, name) VALUES ('a-b-9', 'x')$$, 'a valid slug');
SELECT throws_ok($$UPDATE tenancy.jobs SET progress = 101$$, '23514', NULL, 'job progress is at most 100');
SELECT throws_ok($$UPDATE tenancy.jobs SET progress = -1$$, '23514', NULL, 'job progress is at least 0');
SELECT throws_ok($$UPDATE tenancy.jobs SET status = 'done'$$, '23514', NULL, 'job status is one of the seed''s');
SELECT throws_ok($$UPDATE tenancy.tenants SET settings = '[]'$$, '23514', NULL, 'settings is a JSON object');
SELECT throws_ok($$INSERT INTO tenancy.tenants (slug, name, email) VALUES ('dup', 'x', 'OPS@ACME.TEST')$$, '23505', NULL,
                 'tenant email is unique, case-insensitively');
SELECT throws_ok($$INSERT INTO tenancy.users (email) VALUES ('Alice@Acme.Test')$$, '23505', NULL,
                 'user email is unique, case-insensitively');
SELECT throws_ok($$UPDATE tenancy.projects SET start_date = '2027-01-01', due_date = '2026-01-01'$$, '23514', NULL,
                 'a project is not due before it starts');
SELECT throws_ok($$INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ('a0000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-0000000000b1', 'king')$$,
                 '22P02', NULL, 'role must be a member_role');

-- ON DELETE behaviour.
SELECT lives_ok($$DELETE FROM tenancy.subscriptions WHERE tenant_id = 'a0000000-0000-4000-8000-000000000001'$$, 'a subscription can be deleted');
SELECT is((SELECT count(*) FROM tenancy.subscription_audit WHERE tenant_id = 'a0000000-0000-4000-8000-000000000001' AND subscription_id IS NULL),
          1::bigint, 'its audit rows stay, with subscription_id NULL and tenant_id kept');
SELECT lives_ok($$DELETE FROM tenancy.users WHERE email = 'dave@acme.test'$$, 'a user can be deleted');
SELECT is((SELECT count(*) FROM tenancy.memberships WHERE user_id = '00000000-0000-4000-8000-0000000000a4'), 0::bigint,
          'their memberships go with them');
SELECT lives_ok($$DELETE FROM tenancy.tenants WHERE slug = 'globex'$$, 'a tenant can be deleted');
SELECT is((SELECT sum(n) FROM (
              SELECT count(*) n FROM tenancy.memberships WHERE tenant_id = 'b0000000-0000-4000-8000-000000000002'
    UNION ALL SELECT count(*) FROM tenancy.integrations WHERE tenant_id = 'b0000000-0000-4000-8000-000000000002'
    UNION ALL SELECT count(*) FROM tenancy.actions WHERE tenant_id = 'b0000000-0000-4000-8000-000000000002'
    UNION ALL SELECT count(*) FROM tenancy.request_logs WHERE tenant_id = 'b0000000-0000-4000-8000-000000000002'
    UNION ALL SELECT count(*) FROM tenancy.subscription_audit WHERE tenant_id = 'b0000000-0000-4000-8000-000000000002'
    UNION ALL SELECT count(*) FROM tenancy.projects WHERE tenant_id = 'b0000000-0000-4000-8000-000000000002'
    UNION ALL SELECT count(*) FROM tenancy.assets WHERE tenant_id = 'b0000000-0000-4000-8000-000000000002') s),
    0::numeric, 'everything of the tenant goes with it (cascade)');

-- pg_dump keeps the rows of every table.
SELECT is(
    (SELECT array_agg(c.relname::text ORDER BY c.relname::text) FROM pg_class c
     WHERE c.relnamespace IN ('tenancy'::regnamespace, 'tenancy_private'::regnamespace) AND c.relkind = 'r'
       AND c.oid <> ALL ((SELECT extconfig FROM pg_extension WHERE extname = 'pg_tenancy')::oid[])),
    CASE WHEN current_setting('server_version_num')::int >= 150000 THEN NULL ELSE ARRAY['request_logs_default'] END,
    'every table is registered with pg_extension_config_dump (14: not the default partition, which pg_dump 14 crashes on)');

SELECT * FROM finish();
ROLLBACK;
