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
