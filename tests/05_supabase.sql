-- Supabase: when auth.users exists at CREATE EXTENSION time, tenancy.users follows it; when it
-- does not, nothing breaks and tenancy.sync_auth_users() installs the mirror later.
BEGIN;
\set QUIET 1
\pset format unaligned
\pset tuples_only true
\set QUIET 0
SELECT * FROM no_plan();

-- The whole extension is reinstalled inside this transaction (rolled back at the end).
DROP EXTENSION pg_tenancy;
CREATE SCHEMA auth;
CREATE TABLE auth.users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email varchar(255),
    phone text,
    raw_user_meta_data jsonb NOT NULL DEFAULT '{}'
);
INSERT INTO auth.users (id, email, raw_user_meta_data)
VALUES ('11111111-0000-4000-8000-000000000001', 'early@example.test', '{"full_name": "Early Bird"}');

SELECT lives_ok('CREATE EXTENSION pg_tenancy', 'CREATE EXTENSION with auth.users present');
SELECT is((SELECT name FROM tenancy.users WHERE id = '11111111-0000-4000-8000-000000000001'), 'Early Bird',
          'existing auth users are copied (name from full_name)');

INSERT INTO auth.users (id, email, raw_user_meta_data)
VALUES ('11111111-0000-4000-8000-000000000002', 'new@example.test', '{"name": "New", "full_name": "Ignored", "avatar_url": "https://a.test/x.png"}');
SELECT results_eq($$SELECT email, name, avatar_url FROM tenancy.users WHERE id = '11111111-0000-4000-8000-000000000002'$$,
                  $$VALUES ('new@example.test'::text, 'New'::text, 'https://a.test/x.png'::text)$$,
                  'a sign-up is mirrored (name preferred over full_name)');
UPDATE auth.users SET email = 'renamed@example.test' WHERE id = '11111111-0000-4000-8000-000000000002';
SELECT is((SELECT email FROM tenancy.users WHERE id = '11111111-0000-4000-8000-000000000002'), 'renamed@example.test',
          'an email change is mirrored');
INSERT INTO auth.users (id, phone) VALUES ('11111111-0000-4000-8000-000000000003', '+15550001');
SELECT is((SELECT count(*) FROM tenancy.users WHERE id = '11111111-0000-4000-8000-000000000003'), 0::bigint,
          'a phone-only user is skipped (tenancy.users.email is NOT NULL)');
UPDATE auth.users SET email = 'phone@example.test' WHERE id = '11111111-0000-4000-8000-000000000003';
SELECT is((SELECT count(*) FROM tenancy.users WHERE id = '11111111-0000-4000-8000-000000000003'), 1::bigint,
          'and mirrored once they have an email');
DELETE FROM auth.users WHERE id = '11111111-0000-4000-8000-000000000002';
SELECT is((SELECT count(*) FROM tenancy.users WHERE id = '11111111-0000-4000-8000-000000000002'), 0::bigint,
          'a deleted auth user is deleted');

-- Without auth.users: the extension installs, and the mirror can be added later.
SELECT lives_ok('DROP EXTENSION pg_tenancy CASCADE', 'DROP EXTENSION (CASCADE drops the trigger on auth.users)');
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgrelid = 'auth.users'::regclass AND NOT tgisinternal), 0::bigint,
          'no trigger is left behind on auth.users');
ALTER TABLE auth.users RENAME TO users_later;
SELECT lives_ok('CREATE EXTENSION pg_tenancy', 'CREATE EXTENSION without auth.users');
SELECT throws_ok('SELECT tenancy.sync_auth_users()', '42P01', 'auth.users does not exist', 'sync_auth_users() says why it cannot');
ALTER TABLE auth.users_later RENAME TO users;
SELECT is(tenancy.sync_auth_users(), 2::bigint, 'sync_auth_users() copies the existing users');
INSERT INTO auth.users (email) VALUES ('later@example.test');
SELECT is((SELECT count(*) FROM tenancy.users WHERE email = 'later@example.test'), 1::bigint, 'and keeps following');

-- Single sign-on: Supabase lets an SSO account share an address with a password account (its
-- unique index on email excludes SSO users).  Someone who registers the victim's address first
-- must not lock the victim out of their company's SSO.
ALTER TABLE auth.users ADD COLUMN is_sso_user boolean NOT NULL DEFAULT false;
SELECT is(tenancy.sync_auth_users(), 0::bigint, 'sync_auth_users() again: the trigger now follows is_sso_user');
INSERT INTO auth.users (id, email) VALUES ('11111111-0000-4000-8000-000000000010', 'victim@corp.test');
SELECT lives_ok($$INSERT INTO auth.users (id, email, is_sso_user) VALUES ('11111111-0000-4000-8000-000000000011', 'Victim@corp.test', true)$$,
                'an SSO sign-up with an address a password account already has is mirrored');
SELECT results_eq($$SELECT id::text, is_sso_user FROM tenancy.users WHERE lower(email) = 'victim@corp.test' ORDER BY id$$,
                  $$VALUES ('11111111-0000-4000-8000-000000000010', false), ('11111111-0000-4000-8000-000000000011', true)$$,
                  'both accounts are in tenancy.users, the SSO one marked');
SELECT throws_ok($$INSERT INTO tenancy.users (email) VALUES ('VICTIM@corp.test')$$, '23505', NULL,
                 'two password accounts still cannot share an address');

SELECT * FROM finish();
ROLLBACK;
