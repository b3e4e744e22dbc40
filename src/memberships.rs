//! Memberships: who belongs to a tenant, with which role.
//!
//! `tenancy.memberships` is the authority every context check reads, so members write it through
//! these functions only (`authenticated` has no INSERT, UPDATE or DELETE on it), and they keep the
//! rules a table privilege could not (service_role, trusted, may also write the table directly,
//! where these rules are its own to keep):
//!
//! * owner and admin manage members; service_role (after `set_tenant`) too;
//! * only an owner (or the service) makes an owner, or changes or removes one: an admin can
//!   neither promote itself nor remove the owner;
//! * a tenant never loses its last owner;
//! * anyone may leave (remove their own membership), except the last owner.
//!
//! Changes of one tenant's memberships are serialised by a transaction lock of the extension's
//! own class (`pg_locks`: advisory, `objsubid = 29810`; SQL cannot take it), and the owners' rows
//! are locked when they are counted, so two owners removing each other concurrently cannot both
//! succeed, in READ COMMITTED (the second sees one owner left) or REPEATABLE READ (40001).  Every write fires the cache
//! invalidation trigger of the table (sql/caches.sql): a removed member is refused at once.
use crate::context;
use crate::error::{null_argument, raise, spi_failed};
use crate::lookup::{self, Key};
use pgrx::prelude::*;

/// Lock class of the per-tenant membership lock (`objsubid = 29810` in `pg_locks`).
const MEMBERSHIP_LOCK_CLASS: u16 = 0x7472;

/// The roles a membership may have: the context's roles but `service` and `api_key`, which are
/// not memberships.
fn valid_role(role: Option<&str>) -> &'static str {
    let role = role.unwrap_or_else(|| null_argument("role"));
    context::ROLES
        .iter()
        .copied()
        .find(|r| *r == role && !matches!(*r, "service" | "api_key"))
        .unwrap_or_else(|| {
            raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                "role must be owner, admin, manager, member or client",
                None,
            )
        })
}

fn denied(message: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        message,
        None,
    )
}

/// Who acts on `target`'s membership: the tenant, the caller's role in it (owner, admin or
/// service) and whether the caller is `target`, after taking the tenant's membership lock.
/// `allow_self`: a member may act on their own membership (leaving) whatever their role.
/// `before_lock` runs once the caller is known to be allowed, before the tenant's lock is taken:
/// for what may wait (a row lock), so that no wait happens while the tenant's lock is held.
fn manager_of(
    target: &pgrx::Uuid,
    allow_self: bool,
    before_lock: impl FnOnce(),
) -> (pgrx::Uuid, &'static str, bool) {
    let ctx = context::current();
    let is_self = ctx.user.as_ref() == Some(target);
    let tenant = match ctx.tenant {
        Some(tenant) if allow_self && is_self => tenant,
        _ => context::tenant_of_roles(&ctx, &["owner", "admin", "service"], || {
            "permission denied for memberships: only a tenant's owner or admin, or service_role, may manage them"
                .to_string()
        }),
    };
    before_lock();
    crate::advisory::advisory_xact_lock(MEMBERSHIP_LOCK_CLASS, &tenant, true, true);
    // A change committed while we waited for the lock (the caller removed or demoted) counts,
    // and the caller's own membership row is locked until the end of the transaction, so that
    // a writer that does not take the membership lock (service_role writing the table) cannot
    // remove or demote it between this check and the write.
    let now = context::current();
    if now.tenant != Some(tenant) || now.role != ctx.role {
        context::stale();
    }
    if let (Some(user), Some(role)) = (ctx.user, ctx.role.filter(|r| *r != "service")) {
        let locked = crate::superuser::as_superuser(|| {
            Spi::get_one_with_args::<String>(
                &format!(
                    "SELECT (SELECT role::pg_catalog.text FROM {}
                              WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND user_id OPERATOR(pg_catalog.=) $2
                              FOR SHARE)",
                    crate::citus::row_lock_target("tenancy", "memberships")
                ),
                &[tenant.into(), user.into()],
            )
        })
        .unwrap_or_else(|e| spi_failed("locking the caller's membership", e));
        if locked.as_deref() != Some(role) {
            context::stale();
        }
    }
    (tenant, ctx.role.unwrap_or(""), is_self)
}

/// The role of `user` in `tenant` now (read after the lock, under the latest snapshot), or None.
fn role_of(tenant: &pgrx::Uuid, user: &pgrx::Uuid) -> Option<String> {
    lookup::fetch(
        lookup::Rel::public(c"memberships"),
        c"memberships_pkey",
        &[Key::uuid(1, tenant), Key::uuid(2, user)],
        &[c"role"],
        |cols| cols[0].map(crate::datum::enum_label),
    )
    .flatten()
}

/// How many owners the tenant has, their rows locked: under REPEATABLE READ a snapshot taken
/// before the membership lock could still count an owner another transaction has just removed,
/// and the row lock turns that into a serialization failure (40001) instead of a tenant without
/// owners.
fn owners(tenant: &pgrx::Uuid) -> i64 {
    crate::superuser::as_superuser(|| {
        Spi::get_one_with_args::<i64>(
            &format!(
                "SELECT count(*) FROM (SELECT FROM {}
                                        WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND role OPERATOR(pg_catalog.=) 'owner'
                                        FOR NO KEY UPDATE) o",
                crate::citus::row_lock_target("tenancy", "memberships")
            ),
            &[(*tenant).into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("counting owners", e))
    .unwrap_or(0)
}

fn write(sql: &str, args: &[pgrx::datum::DatumWithOid], what: &str) -> usize {
    crate::superuser::as_superuser(|| {
        Spi::connect_mut(|c| c.update(sql, None, args).map(|t| t.len()))
    })
    .unwrap_or_else(|e| spi_failed(what, e))
}

/// Lock `user`'s row as the new membership's foreign key will (FOR KEY SHARE), before the
/// tenant's lock: a user who holds their own profile row locked (`SELECT … FOR UPDATE`) then makes
/// only this call wait, not every membership change of the tenant.  NO_DATA_FOUND if there is no
/// such user.
fn lock_user(user: &pgrx::Uuid) {
    let found = crate::superuser::as_superuser(|| {
        Spi::get_one_with_args::<bool>(
            &format!(
                "SELECT (SELECT true FROM {} WHERE id OPERATOR(pg_catalog.=) $1 FOR KEY SHARE)",
                crate::citus::row_lock_target("tenancy", "users")
            ),
            &[(*user).into()],
        )
    })
    .unwrap_or_else(|e| spi_failed("looking up the user", e));
    if found != Some(true) {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("user {user} does not exist"),
            None,
        );
    }
}

fn last_owner() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "a tenant must keep at least one owner",
        Some("Make another member owner first."),
    )
}

/// Add `user_id` to the current tenant with `role` (default `member`); false if they already are
/// a member (their role is left as it is: see `set_member_role`).  Owner/admin or service_role;
/// only an owner or the service adds an owner.
#[pg_extern(volatile, parallel_unsafe)]
pub fn add_member(user_id: Option<pgrx::Uuid>, role: default!(Option<&str>, "'member'")) -> bool {
    let user = user_id.unwrap_or_else(|| null_argument("user_id"));
    let role = valid_role(role);
    let (tenant, caller, _) = manager_of(&user, false, || lock_user(&user));
    if role == "owner" && caller == "admin" {
        denied("permission denied to add an owner: only an owner may");
    }
    write(
        "INSERT INTO tenancy.memberships (tenant_id, user_id, role) VALUES ($1, $2, $3::pg_catalog.text::tenancy.member_role)
         ON CONFLICT (tenant_id, user_id) DO NOTHING RETURNING 1",
        &[tenant.into(), user.into(), role.into()],
        "adding the member",
    ) == 1
}

/// Change the role of member `user_id` of the current tenant.  Owner/admin or service_role; only
/// an owner or the service makes an owner or changes an owner's role, and the last owner stays.
#[pg_extern(volatile, parallel_unsafe)]
pub fn set_member_role(user_id: Option<pgrx::Uuid>, role: Option<&str>) {
    let user = user_id.unwrap_or_else(|| null_argument("user_id"));
    let role = valid_role(role);
    let (tenant, caller, _) = manager_of(&user, false, || ());
    let Some(current) = role_of(&tenant, &user) else {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("user {user} is not a member of this tenant"),
            None,
        )
    };
    if (role == "owner" || current == "owner") && caller == "admin" {
        denied("permission denied to make or change an owner: only an owner may");
    }
    if current == "owner" && role != "owner" && owners(&tenant) <= 1 {
        last_owner();
    }
    write(
        "UPDATE tenancy.memberships SET role = $3::pg_catalog.text::tenancy.member_role
          WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND user_id OPERATOR(pg_catalog.=) $2",
        &[tenant.into(), user.into(), role.into()],
        "changing the member's role",
    );
}

/// Remove member `user_id` from the current tenant; false if they were not a member.  Owner/admin
/// or service_role, or the member themselves (leaving); only an owner or the service removes an
/// owner, and the last owner stays.
#[pg_extern(volatile, parallel_unsafe)]
pub fn remove_member(user_id: Option<pgrx::Uuid>) -> bool {
    let user = user_id.unwrap_or_else(|| null_argument("user_id"));
    let (tenant, caller, leaving) = manager_of(&user, true, || ());
    let Some(current) = role_of(&tenant, &user) else {
        return false;
    };
    if current == "owner" && !leaving && caller == "admin" {
        denied("permission denied to remove an owner: only an owner may");
    }
    if current == "owner" && owners(&tenant) <= 1 {
        last_owner();
    }
    write(
        "DELETE FROM tenancy.memberships WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND user_id OPERATOR(pg_catalog.=) $2",
        &[tenant.into(), user.into()],
        "removing the member",
    ) == 1
}
