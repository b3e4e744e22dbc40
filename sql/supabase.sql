-- Supabase integration: mirror auth.users into tenancy.users (the seeds' handle_new_user).
--
-- When auth.users exists at CREATE EXTENSION time, a trigger on it keeps tenancy.users in step
-- (insert, update of email or metadata, delete) and existing rows are copied.  When it does not,
-- nothing is created; call tenancy.sync_auth_users() later, once it exists.  Users without an
-- email (phone-only sign-ups) are skipped until they get one: tenancy.users.email is NOT NULL.

CREATE FUNCTION tenancy.handle_auth_user()
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

-- Install the trigger on auth.users and copy its existing rows; returns the number of rows copied.
CREATE FUNCTION tenancy.sync_auth_users()
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
COMMENT ON FUNCTION tenancy.sync_auth_users() IS
    'Mirror Supabase auth.users into tenancy.users: install the trigger and copy existing rows';

DO $$
BEGIN
    IF pg_catalog.to_regclass('auth.users') IS NOT NULL THEN
        PERFORM tenancy.sync_auth_users();
    END IF;
END
$$;
