-- Request logs: partition maintenance and statistics.  log_request itself is in Rust
-- (src/request_log/); the partitioned table is in sql/schema.sql.
--
-- Partitions are daily, in UTC, named request_logs_pYYYYMMDD, in schema tenancy_private (read and
-- written through tenancy.request_logs only).  Rows whose day has no partition go to
-- request_logs_default, so log_request never fails for want of one; maintenance moves them into
-- their day's partition later.

-- Create the partitions of the next `premake` days, move rows out of the default partition into
-- their day's partition, and drop the partitions (and delete the default partition's rows) of the
-- days that are entirely older than `retain`.  `as_of` is "now" (for tests and backfills).  Safe to run concurrently (one run
-- at a time) and as often as you like; with pg_cron:
--   SELECT cron.schedule('tenancy-request-logs', '7 * * * *', $$SELECT tenancy.maintain_request_logs('30 days')$$);
-- Returns what it did.  Needs the privileges of the table's owner (superuser by default).
--
-- Maintenance never waits long for a lock: creating, attaching and dropping partitions need strong
-- locks on tenancy.request_logs, and a DDL statement that waits for one makes every later
-- log_request of every tenant wait behind it.  Each such step waits at most `lock_wait`; a step
-- that could not get its lock is skipped, reported under "skipped", and done at the next run.
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

-- A new partition gets the key and the per-integration index (they live on each partition, see
-- sql/schema.sql), and is read and written through its parent only: RLS forced, no policy, no
-- grant, and its row type usable by no application role (sql/grants.sql says why).
CREATE FUNCTION tenancy._seal_partition(part text)
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

-- Per integration and action of the current tenant, between `since` and `until`: how many
-- requests, how many failed (HTTP status >= 400 or an error), and the latency percentiles.  Runs
-- as the caller: RLS gives a tenant's members their own logs.
CREATE FUNCTION tenancy.request_stats(since timestamptz, until timestamptz DEFAULT now())
    RETURNS TABLE (integration_id uuid, action_id uuid, requests bigint, errors bigint, error_rate double precision,
                   p50_ms double precision, p95_ms double precision, p99_ms double precision)
    LANGUAGE sql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT l.integration_id, l.action_id, count(*),
           count(*) FILTER (WHERE l.status_code >= 400 OR l.error IS NOT NULL),
           (count(*) FILTER (WHERE l.status_code >= 400 OR l.error IS NOT NULL))::double precision / count(*),
           percentile_cont(0.50) WITHIN GROUP (ORDER BY l.latency_ms),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY l.latency_ms),
           percentile_cont(0.99) WITHIN GROUP (ORDER BY l.latency_ms)
    FROM tenancy.request_logs l
    WHERE l.tenant_id = tenancy.current_tenant_id() AND l.created_at >= since AND l.created_at < until
    GROUP BY l.integration_id, l.action_id
    ORDER BY count(*) DESC, l.integration_id, l.action_id
$$;
COMMENT ON FUNCTION tenancy.request_stats(timestamptz, timestamptz) IS
    'Request counts, error rate and p50/p95/p99 latency per integration and action of the current tenant';
