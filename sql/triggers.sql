-- updated_at triggers (src/triggers.rs).

-- The trigger function is a plain C function (no pgrx wrapper) so that it costs what contrib
-- moddatetime costs, or less.  Argument: the column name, default updated_at.
CREATE FUNCTION tenancy.set_updated_at() RETURNS trigger
    LANGUAGE c
    AS 'MODULE_PATHNAME', 'set_updated_at';
COMMENT ON FUNCTION tenancy.set_updated_at() IS
    'BEFORE UPDATE trigger: sets the column named by its argument (default updated_at) to now()';

-- Attach the trigger to a table.  Idempotent: an existing trigger of the same name is replaced.
-- Runs with the caller's privileges: the caller must own the table.
CREATE FUNCTION tenancy.manage_updated_at(tbl regclass, column_name name DEFAULT 'updated_at')
    RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    col_type oid;
BEGIN
    IF tbl IS NULL OR column_name IS NULL THEN
        RAISE EXCEPTION 'tenancy.manage_updated_at(): tbl and column_name must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT a.atttypid INTO col_type
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = tbl AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenancy.manage_updated_at(): column "%" of % does not exist', column_name, tbl
            USING ERRCODE = 'undefined_column';
    END IF;
    IF col_type NOT IN ('timestamptz'::regtype, 'timestamp'::regtype) THEN
        RAISE EXCEPTION 'tenancy.manage_updated_at(): column "%" of % must be timestamptz or timestamp', column_name, tbl
            USING ERRCODE = 'datatype_mismatch';
    END IF;
    EXECUTE format('CREATE OR REPLACE TRIGGER %I BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION tenancy.set_updated_at(%L)',
                   'tenancy_' || column_name, tbl, column_name);
END
$$;
COMMENT ON FUNCTION tenancy.manage_updated_at(regclass, name) IS
    'Attach the updated_at trigger (tenancy.set_updated_at) to a table';

-- Every table of the model that has updated_at gets the trigger.
SELECT tenancy.manage_updated_at(c.oid)
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = 'updated_at' AND NOT a.attisdropped
WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p')
ORDER BY c.relname;
