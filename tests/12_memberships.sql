-- Memberships: written only through tenancy.add_member, set_member_role and remove_member, which
-- keep the rules no table privilege could (docs/security.md, "The role matrix").
BEGIN;
\ir helpers.psql
SELECT * FROM no_plan();
\set carol '''00000000-0000-4000-8000-0000000000a3'''
\set gina '''00000000-0000-4000-8000-0000000000b2'''

-- No application role writes the table itself.
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('DELETE FROM tenancy.memberships WHERE user_id = %L', :bob)),
          'error:42501', 'not even the owner deletes rows directly');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('UPDATE tenancy.memberships SET role = ''owner'' WHERE user_id = %L', :bob)),
          'error:42501', 'an admin cannot promote itself through the table');

-- Who may manage members.
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format('SELECT tenancy.add_member(%L)', :frank)), 'error:42501', 'a member cannot add members');
SELECT is(pg_temp.probe('authenticated', :acme, :carol, format('SELECT tenancy.add_member(%L)', :frank)), 'error:42501', 'a manager cannot add members');
SELECT is(pg_temp.probe('authenticated', :acme, :erin, format('SELECT tenancy.remove_member(%L)', :dave)), 'error:42501', 'a client cannot remove others');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.add_member(%L, ''client'')', :frank)), 'value:true', 'an admin adds a client');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.add_member(%L)', :dave)), 'value:false', 'adding an existing member changes nothing');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.add_member(%L)', '00000000-0000-4000-8000-00000000ffff')),
          'error:P0002', 'an unknown user');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.add_member(%L, ''superuser'')', :frank)), 'error:22023', 'an unknown role');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, 'SELECT tenancy.add_member(NULL)'), 'error:22004', 'a NULL user');

-- Owners: only an owner makes, changes or removes one.
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.set_member_role(%L, ''owner'')', :bob)),
          'error:42501', 'an admin cannot promote itself to owner');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.add_member(%L, ''owner'')', :frank)),
          'error:42501', 'an admin cannot add an owner');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.set_member_role(%L, ''member'')', :alice)),
          'error:42501', 'an admin cannot demote the owner');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.remove_member(%L)', :alice)),
          'error:42501', 'an admin cannot remove the owner');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.set_member_role(%L, ''manager'')', :dave)),
          'value:', 'an admin changes a member''s role');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.set_member_role(%L, ''manager'')', :bob)),
          'value:', 'an admin may step down itself');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SELECT tenancy.set_member_role(%L, ''owner'')', :bob)),
          'value:', 'the owner makes another owner');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.set_member_role(%L, ''dictator'')', :dave)),
          'error:22023', 'an unknown role is refused');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.set_member_role(%L, ''member'')', :frank)),
          'error:P0002', 'changing the role of a non-member');

-- The last owner stays.
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SELECT tenancy.set_member_role(%L, ''admin'')', :alice)),
          'error:55000', 'the last owner cannot step down');
SELECT is(pg_temp.probe('authenticated', :acme, :alice, format('SELECT tenancy.remove_member(%L)', :alice)),
          'error:55000', 'the last owner cannot leave');
SELECT is(pg_temp.probe('service_role', :acme, NULL, format('SELECT tenancy.remove_member(%L)', :alice)),
          'error:55000', 'not even service_role removes the last owner');

-- Leaving: anyone may remove their own membership.
SELECT is(pg_temp.probe('authenticated', :acme, :erin, format('SELECT tenancy.remove_member(%L)', :erin)), 'value:true', 'a client leaves');
SELECT is(pg_temp.probe('authenticated', :acme, :dave, format('SELECT tenancy.remove_member(%L)', :dave)), 'value:true', 'a member leaves');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.remove_member(%L)', :frank)), 'value:false', 'removing a non-member');
SELECT is(pg_temp.probe('authenticated', :acme, :bob, format('SELECT tenancy.remove_member(%L)', :dave)), 'value:true', 'an admin removes a member');

-- Only within the context's tenant: alice is a member of globex, owner of acme.
SELECT is(pg_temp.probe('authenticated', :globex, :alice, format('SELECT tenancy.remove_member(%L)', :gina)), 'error:42501',
          'a member of globex cannot remove globex''s admin');

-- For real (not in a probe): the effects, and the cache that set_tenant reads.
SELECT tenancy.set_tenant(:acme, :alice);
SELECT lives_ok(format('SELECT tenancy.set_member_role(%L, %L)', :dave, 'client'), 'owner: dave becomes a client');
SELECT is((SELECT role::text FROM tenancy.memberships WHERE tenant_id = :acme AND user_id = :dave), 'client', 'the row says so');
SELECT is(tenancy.set_tenant(:acme, :dave), 'client', 'and so does the next set_tenant');
SELECT tenancy.set_tenant(:acme, :alice);
SELECT ok(tenancy.remove_member(:dave), 'owner removes dave');
SELECT throws_ok(format('SELECT tenancy.set_tenant(%L, %L)', :acme, :dave), '42501', NULL, 'a removed member is refused at once');
SELECT tenancy.clear_context();

-- The functions are the only door, and anon has none.
SELECT is(pg_temp.probe('anon', NULL, NULL, format('SELECT tenancy.add_member(%L)', :frank)), 'error:42501', 'anon cannot call them');

SELECT * FROM finish();
ROLLBACK;
