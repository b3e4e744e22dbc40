//! The request settings end with the transaction that set them.
//!
//! `request.jwt.claims` and `request.headers` are ordinary settings: any role may set them for
//! the session (`set_config(…, false)`, `SET` without `LOCAL`), and a session-level value would
//! stay on the server connection after the transaction.  Behind a transaction pooler the next
//! client of that connection, of any tenant, would find it: a client that called
//! `pre_request()` without setting them itself acted as whoever left them (its writes landed in
//! that one's tenant), and a hostile next client could read a token left there and send it again
//! as its own (both found in review, 2026-12-01).  PostgREST sets both in every transaction,
//! locally.
//!
//! So as each transaction commits (or is prepared), pg_tenancy empties them for the session,
//! when they hold anything: nothing of one request is left for the next.  A rolled-back
//! transaction's settings are undone by PostgreSQL.  What remains at a transaction's start is
//! what the DBA configured (`ALTER ROLE … SET`, `postgresql.conf`).  The cost: two settings read
//! per commit, and set when they held a value.
use pgrx::pg_sys;
use std::ffi::CStr;

/// The settings `pre_request` reads.
const NAMES: [&CStr; 2] = [c"request.jwt.claims", c"request.headers"];

/// From the end-of-transaction callback, before commit or prepare: empty the request settings
/// for the session.
pub fn clear_before_commit() {
    for name in NAMES {
        // SAFETY: GetConfigOption returns NULL (no such setting) or a NUL-terminated string.
        let set = unsafe {
            let ptr = pg_sys::GetConfigOption(name.as_ptr(), true, false);
            !ptr.is_null() && *ptr != 0
        };
        if set {
            crate::gucs::set(
                name,
                c"",
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucAction::GUC_ACTION_SET,
            );
        }
    }
}
