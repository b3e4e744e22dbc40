//! One context per statement.
//!
//! A policy reads the context through InitPlans, `(SELECT tenancy.current_tenant_id())`.  The
//! executor evaluates an InitPlan lazily, the first time a row needs it, and keeps its value for
//! the life of the executor: a cursor's executor lives from `DECLARE` to `CLOSE`, a plpgsql
//! `FOR` loop's for the whole loop.  If the context could change in between, one statement would
//! combine values of two contexts: the tenant read at the first `FETCH` (where the caller is a
//! plain member), the role read at the next one (after switching to a tenant it owns), and owner-only
//! rows of the first tenant come back.
//!
//! So every executor is tracked from `ExecutorStart` until its memory is freed (a reset callback
//! on its per-query memory context: normal end, error, `CLOSE`, subtransaction or transaction
//! abort alike), and the context readers note, in the executor that evaluates them, the context
//! they saw:
//!
//! * the setters (`set_tenant`, `pre_request`, `authenticate`, `clear_context`) refuse to change
//!   the context while any live executor has read it (55000), whatever route the call takes:
//!   a cursor left open, a `LATERAL` or target-list call, a plpgsql loop, a SQL function;
//! * a reader that finds its executor saw another context raises 55000 too: that catches the
//!   one change no setter makes, `ROLLBACK TO SAVEPOINT` restoring an older value under a cursor
//!   declared before the savepoint.
//!
//! Which executor evaluates a reader: the one whose per-query memory context holds the call's
//! `FmgrInfo` (expressions, InitPlans included, are initialised in it).  A reader evaluated
//! outside any executor (a plpgsql simple expression such as `IF tenancy.current_role() = …`, or
//! a call from Rust inside one of our functions) keeps nothing for later and is not noted: a
//! plpgsql function may check the context and then switch it.  The price: a policy that wraps a
//! reader in a function of its own (plpgsql, or SQL that is not inlined) hides the read from the
//! statement that caches the function's result.  Policies call the readers directly (ours do, and
//! so do those of `enable_tenant_isolation`); docs/security.md says so.
//!
//! Cost: a few pointer comparisons per executor start and end, and one comparison of the
//! context's bytes (under 200) per reader call, that is, per InitPlan.
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;

struct Live {
    /// The executor's per-query memory context (`es_query_cxt`): its identity while it lives.
    cxt: pg_sys::MemoryContext,
    /// The context (the bytes of `tenancy.context`) its readers saw first, once one has run.
    seen: Option<Box<[u8]>>,
}

thread_local! {
    /// Live executors, in start order.  Few at a time: the nesting depth plus open cursors.
    static LIVE: RefCell<Vec<Live>> = const { RefCell::new(Vec::new()) };
}

static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

/// Install the `ExecutorStart` hook and the end-of-transaction check.  From `_PG_init`, at server
/// start (`shared_preload_libraries`), once per process.
pub fn init() {
    // SAFETY: _PG_init runs once, single-threaded, before any query; we chain to the previous hook.
    unsafe {
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_start(query: *mut pg_sys::QueryDesc, eflags: i32) {
    // On Citus, before Citus opens a connection for this statement: a context a released
    // savepoint took from the workers.
    crate::citus::reissue_if_lost();
    // SAFETY: called by the executor with a valid QueryDesc; the previous hook (or the standard
    // function) fills in its EState.
    unsafe {
        match PREV_EXECUTOR_START {
            Some(prev) => prev(query, eflags),
            None => pg_sys::standard_ExecutorStart(query, eflags),
        }
        let estate = (*query).estate;
        // The extension's own SQL (qualified names, no policy, no reader) keeps no context.
        if estate.is_null() || crate::superuser::internal() {
            return;
        }
        let cxt = (*estate).es_query_cxt;
        // The callback lives in the context it watches, so it is freed with it.
        let cb = pg_sys::MemoryContextAllocZero(
            cxt,
            std::mem::size_of::<pg_sys::MemoryContextCallback>(),
        ) as *mut pg_sys::MemoryContextCallback;
        (*cb).func = Some(executor_freed);
        (*cb).arg = cxt.cast();
        pg_sys::MemoryContextRegisterResetCallback(cxt, cb);
    }
    LIVE.with(|live| {
        // SAFETY: as above.
        let cxt = unsafe { (*(*query).estate).es_query_cxt };
        live.borrow_mut().push(Live { cxt, seen: None });
    });
}

/// The executor's memory is being freed: it is over.  Runs inside PostgreSQL's memory management,
/// also during abort, so it never raises and never waits; if LIVE is borrowed (it never is when
/// memory is freed) the transaction-end check clears it.
unsafe extern "C-unwind" fn executor_freed(arg: *mut std::ffi::c_void) {
    let cxt: pg_sys::MemoryContext = arg.cast();
    LIVE.with(|live| {
        if let Ok(mut live) = live.try_borrow_mut() {
            if let Some(i) = live.iter().rposition(|e| e.cxt == cxt) {
                live.remove(i);
            }
        }
    });
}

/// No executor outlives its top-level transaction (a held cursor is materialised, and its
/// executor ended, at COMMIT): whatever is left is forgotten.
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    use pg_sys::XactEvent::*;
    // Nothing of one request's settings is left for the next transaction on this connection.
    if matches!(event, XACT_EVENT_PRE_COMMIT | XACT_EVENT_PRE_PREPARE) {
        super::request_settings::clear_before_commit();
    }
    if matches!(
        event,
        XACT_EVENT_COMMIT
            | XACT_EVENT_ABORT
            | XACT_EVENT_PARALLEL_COMMIT
            | XACT_EVENT_PARALLEL_ABORT
            | XACT_EVENT_PREPARE
    ) {
        LIVE.with(|live| {
            if let Ok(mut live) = live.try_borrow_mut() {
                live.clear();
            }
        });
        crate::superuser::reset_internal();
    }
}

fn changed_under_statement() -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "the tenant context changed while a statement that read it was still open",
        Some("A statement sees one tenant context from start to end; close cursors that were opened under another one."),
    )
}

/// The memory context that holds a function call's `FmgrInfo`: for a call in an expression (an
/// InitPlan included), the per-query memory context of the executor evaluating it.
pub(crate) fn caller_memory(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    if fcinfo.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: a non-NULL fcinfo is the function manager's, valid for the call, and so is its
    // flinfo when it is not NULL.
    unsafe {
        let flinfo = (*fcinfo).flinfo;
        if flinfo.is_null() {
            std::ptr::null_mut()
        } else {
            (*flinfo).fn_mcxt
        }
    }
}

/// A context reader evaluated in memory context `cxt` (see [`caller_memory`]) sees `context`
/// (the bytes of `tenancy.context`): note it against the executor whose per-query context that
/// is, or raise 55000 if that executor already saw another context.
pub(crate) fn note_read(cxt: pg_sys::MemoryContext, context: &[u8]) {
    if cxt.is_null() {
        return;
    }
    let consistent = LIVE.with(|live| {
        let mut live = live.borrow_mut();
        let Some(entry) = live.iter_mut().rev().find(|e| e.cxt == cxt) else {
            return true; // not evaluated by an executor of its own: nothing keeps the value
        };
        match &entry.seen {
            None => {
                entry.seen = Some(context.into());
                true
            }
            Some(seen) => **seen == *context,
        }
    });
    if !consistent {
        changed_under_statement();
    }
}

/// Is `cxt` the per-query memory context of a live executor (see [`caller_memory`]): is the
/// call evaluated by a statement that is still running, whose life a value may be kept for?
pub(crate) fn is_live_executor(cxt: pg_sys::MemoryContext) -> bool {
    // From the newest: the caller is most often the innermost statement.
    !cxt.is_null() && LIVE.with(|live| live.borrow().iter().rev().any(|e| e.cxt == cxt))
}

/// Is any executor of a user's statement running (started, not yet freed)?  A function prepared
/// while none is belongs to a top-level statement's plan, not to a query run inside another.
pub(crate) fn executor_running() -> bool {
    LIVE.with(|live| !live.borrow().is_empty())
}

/// The context is about to change: refuse (55000) while a live executor has read it.
pub(crate) fn ensure_no_reader() {
    let readers = LIVE.with(|live| live.borrow().iter().filter(|e| e.seen.is_some()).count());
    if readers > 0 {
        raise(
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            "cannot change the tenant context while a statement that read it is still open",
            Some(
                "Close open cursors first, and call tenancy.set_tenant(), pre_request(), authenticate() or \
                 clear_context() in a statement of its own, not inside a query over tenant tables.",
            ),
        );
    }
}
