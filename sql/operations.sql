-- Operations: health check and demo data.

-- health(): one jsonb a monitor can read.  Row counts come from the statistics collector (cheap,
-- approximate) unless exact_counts is true (count(*) on every table: O(rows)).  Tables of both
-- schemas, tenancy and tenancy_private, by name (no name is in both).
CREATE FUNCTION tenancy.health(exact_counts boolean DEFAULT false)
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
COMMENT ON FUNCTION tenancy.health(boolean) IS
    'Health of pg_tenancy: versions, preload and keyring status, forced RLS on every table, row counts';

-- seed_demo(): an idempotent demo data set (fixed ids; a second call changes nothing).
--   Tenants acme and globex; in each, one user per role (owner, admin, manager, member, client);
--   alice owns acme and is also a member of globex.  An integration like the Waygate seed's Slack
--   mock with five actions and field mappings, clients, projects, jobs, assets, a subscription
--   with its audit trail, and a few request logs.  Returns the ids, for scripts.
CREATE FUNCTION tenancy.seed_demo()
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
COMMENT ON FUNCTION tenancy.seed_demo() IS 'Idempotent demo data set: two tenants, a user per role, a Slack mock integration, ...';
