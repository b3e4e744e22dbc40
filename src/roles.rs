//! pg_tenancy's application roles, by name, in one place: `anon`, `authenticated` and
//! `service_role`, the roles PostgREST-style clients (and pooled application connections) run
//! their SQL as.  Whether the current user has their privileges
//! ([`current_user_is_application_role`], for Citus's own functions), and whether the session
//! acts for them in any way ([`session_acts_for_application_role`], for what would outlive the
//! transaction on a pooled connection).
use pgrx::pg_sys;
use std::ffi::CStr;

/// The application roles' names.
pub const APPLICATION_ROLES: [&CStr; 3] = [c"anon", c"authenticated", c"service_role"];

/// Is `name` one of the application roles' names?
pub fn is_application_role_name(name: &[u8]) -> bool {
    APPLICATION_ROLES.iter().any(|r| r.to_bytes() == name)
}

/// Is `role` one of the application roles themselves?
pub fn is_application_role(role: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookups of roles by name.
    role != pg_sys::InvalidOid
        && APPLICATION_ROLES
            .iter()
            .any(|n| unsafe { pg_sys::get_role_oid(n.as_ptr(), true) } == role)
}

/// Is `user`, not a superuser, related to one of the application roles by `related` (one role
/// list, looked up each time: three syscache lookups, off the hot path; a role created or made
/// again after this backend started counts)?
fn related_to_application_role(
    user: pg_sys::Oid,
    related: unsafe fn(pg_sys::Oid, pg_sys::Oid) -> bool,
) -> bool {
    // SAFETY: PostgreSQL caches superuser status and role memberships.
    unsafe {
        !pg_sys::superuser_arg(user)
            && APPLICATION_ROLES.iter().any(|n| {
                let r = pg_sys::get_role_oid(n.as_ptr(), true);
                r != pg_sys::InvalidOid && related(user, r)
            })
    }
}

/// Is the current user one of the application roles, or a role with their privileges, and not a
/// superuser?
pub fn current_user_is_application_role() -> bool {
    // SAFETY: the current user.
    related_to_application_role(unsafe { pg_sys::GetUserId() }, pg_sys::has_privs_of_role)
}

/// Does this session act for the application roles?  The current user is not a superuser, and
/// it, the role `SET ROLE` chose or the login is one of them or a member of one in any way
/// (`NOINHERIT` included: a login that switches to them per transaction, like PostgREST's
/// authenticator, runs clients' SQL, which could `RESET ROLE` to it, or `SET ROLE` to another
/// role it or they are members of: found in review).
pub fn session_acts_for_application_role() -> bool {
    // SAFETY: the backend's user ids.
    let (current, outer, session) = unsafe {
        (
            pg_sys::GetUserId(),
            pg_sys::GetOuterUserId(),
            pg_sys::GetSessionUserId(),
        )
    };
    // SAFETY: PostgreSQL caches superuser status.
    if unsafe { pg_sys::superuser_arg(current) } {
        return false;
    }
    // A member in any way, NOINHERIT included.
    [current, outer, session]
        .into_iter()
        .any(|u| related_to_application_role(u, pg_sys::is_member_of_role))
}
