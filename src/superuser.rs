//! Running the extension's own SQL with more rights than the caller: what `SECURITY DEFINER …
//! SET search_path` does for a SQL function, for the few internal reads and writes of tables no
//! application role may touch (the vault's keys, the pepper, request logs).  Every caller
//! decides first that the caller may cause what it runs; every name in that SQL is
//! schema-qualified and every operator is `OPERATOR(pg_catalog.=)`.  Review any new use here.
use pgrx::pg_sys;
use std::cell::Cell;

/// Run `f` as the bootstrap superuser with `search_path = pg_catalog, pg_temp`, inside a
/// security-restricted operation: what `SECURITY DEFINER ... SET search_path` does for a SQL
/// function.  For the few internal writes to tables no application role may touch (the vault's
/// keys); the caller has already decided the caller may cause them.  Every name in the SQL `f`
/// runs is schema-qualified and every operator is `OPERATOR(pg_catalog.=)`.  On error,
/// transaction abort restores the user and the settings.
pub fn as_superuser<R>(f: impl FnOnce() -> R) -> R {
    internally(|| as_superuser_inner(f))
}

thread_local! {
    /// How deep we are in the extension's own SQL ([`as_superuser`], [`as_extension`]).
    static INTERNAL: Cell<u32> = const { Cell::new(0) };
}

/// Is the extension running its own SQL (as the superuser, names qualified, no policy, no context
/// reader)?  Executors started there are not tracked (crate::context::statements).
pub fn internal() -> bool {
    INTERNAL.with(|d| d.get() > 0)
}

/// Back to 0 at the end of every top-level transaction (a safety net: see [`internally`]).
pub fn reset_internal() {
    INTERNAL.with(|d| d.set(0));
}

/// Leaves the depth as it found it, also when an ERROR unwinds through (pgrx turns it into a
/// Rust panic that runs destructors): a caught error, in a savepoint, must not leave the
/// extension believing it still runs its own SQL, which would stop executor tracking.
struct Internal;

impl Drop for Internal {
    fn drop(&mut self) {
        INTERNAL.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

fn internally<R>(f: impl FnOnce() -> R) -> R {
    INTERNAL.with(|d| d.set(d.get() + 1));
    let _internal = Internal;
    f()
}

fn as_superuser_inner<R>(f: impl FnOnce() -> R) -> R {
    // As fmgr_security_definer does: the search_path at a nest level of its own, then the user
    // switch, both undone after (or by abort).
    crate::gucs::with_setting(c"search_path", c"pg_catalog, pg_temp", || {
        as_bootstrap_superuser(f)
    })
}

/// `f` as the bootstrap superuser in a security-restricted operation (fmgr_security_definer's
/// user switch); the caller's user and context come back after, or at abort on error.
fn as_bootstrap_superuser<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: GetUserIdAndSecContext/SetUserIdAndSecContext as fmgr_security_definer calls them.
    unsafe {
        let mut saved_user = pg_sys::InvalidOid;
        let mut saved_context = 0;
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
        let result = f();
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
        result
    }
}

/// [`as_superuser`] for SQL that names `tenancy_private`: the extension's own schema of that name
/// must exist first (`42P01` otherwise: a database not yet updated), so that no schema another role
/// makes between this check and the statement's parse can be the one the statement finds (the
/// extension's own cannot be dropped or replaced by such a role).
pub fn as_superuser_private<R>(f: impl FnOnce() -> R) -> R {
    crate::lookup::require_private_schema();
    as_superuser(f)
}

/// [`as_extension`] for SQL that names `tenancy_private` (see [`as_superuser_private`]).
pub fn as_extension_private<R>(f: impl FnOnce() -> R) -> R {
    crate::lookup::require_private_schema();
    as_extension(f)
}

/// Run `f` as the bootstrap superuser inside a security-restricted operation, without touching
/// `search_path`: for a [`crate::spi::KeptStatement`] whose SQL names everything with its schema and takes
/// only parameters (no function or operator is resolved when it runs; defaults, checks and the
/// foreign keys' queries are stored resolved).  What `as_superuser` costs in GUC work (a nest
/// level and a setting, about 2 µs) is not on the hot writes (`log_request`, `store_credential`).
/// On error, transaction abort restores the user.
pub fn as_extension<R>(f: impl FnOnce() -> R) -> R {
    internally(|| as_bootstrap_superuser(f))
}
