//! The request settings a transaction found when it began, so that `pre_request` reads only
//! what the transaction itself set.
//!
//! `request.jwt.claims` and `request.headers` are ordinary settings: any role may set them for
//! the session (`set_config(…, false)`, `SET` without `LOCAL`), and a session-level value stays
//! on the server connection after the transaction.  Behind a transaction pooler the next client of
//! that connection, of any tenant, would find it: a client that calls `pre_request()` without
//! setting them itself would act as whoever left them, and its writes would land in that one's
//! tenant (found in review, 2026-12-01).  PostgREST sets both in every transaction, locally.
//!
//! So at the first statement of each transaction (the first of the planner, executor-start and
//! utility hooks to run in it) the two values are kept, and `pre_request` treats a value equal to
//! the one the transaction began with as not set.  A value set in the transaction, locally or for
//! the session, differs from it and counts.  The cost: one comparison per statement, and two
//! settings read (and, when set, copied) per transaction.
use pgrx::pg_sys;
use std::cell::{Cell, RefCell};
use std::ffi::CStr;

/// The settings `pre_request` reads.
const NAMES: [&CStr; 2] = [c"request.jwt.claims", c"request.headers"];

thread_local! {
    /// Have the values this transaction began with been kept?
    static KEPT: Cell<bool> = const { Cell::new(false) };
    /// Those values (None: unset or empty), in the order of [`NAMES`].
    static AT_START: RefCell<[Option<Box<[u8]>>; 2]> = const { RefCell::new([None, None]) };
}

fn current(name: &CStr) -> Option<Box<[u8]>> {
    // SAFETY: GetConfigOption returns NULL or a NUL-terminated string, copied at once.
    unsafe {
        let ptr = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        if ptr.is_null() {
            return None;
        }
        let bytes = CStr::from_ptr(ptr).to_bytes();
        (!bytes.is_empty()).then(|| bytes.into())
    }
}

/// At the start of every statement (planner, executor start, utility): the first of a
/// transaction keeps the request settings as they are.
pub fn statement_starts() {
    if KEPT.with(Cell::get) {
        return;
    }
    // SAFETY: reads backend-local transaction state.
    if unsafe { !pg_sys::IsTransactionState() } {
        return;
    }
    let values = NAMES.map(current);
    AT_START.with(|a| {
        if let Ok(mut a) = a.try_borrow_mut() {
            *a = values;
            KEPT.with(|k| k.set(true));
        }
    });
}

/// At the end of a transaction: the next one keeps its own.
pub fn transaction_ends() {
    KEPT.with(|k| k.set(false));
    AT_START.with(|a| {
        if let Ok(mut a) = a.try_borrow_mut() {
            *a = [None, None];
        }
    });
}

/// Did this transaction set `name` (one of the request settings) to `value`, rather than find
/// it so?  A value equal to the one it began with was not set by it (and, if none was kept, the
/// current one is the one it began with).
pub fn set_in_this_transaction(name: &CStr, value: &[u8]) -> bool {
    let Some(i) = NAMES.iter().position(|n| *n == name) else {
        return true;
    };
    if !KEPT.with(Cell::get) {
        statement_starts();
    }
    AT_START.with(|a| a.borrow()[i].as_deref() != Some(value))
}
