//! Writes to pg_tenancy's reference tables lock rows, not the whole table, on Citus.
//!
//! Citus orders the `UPDATE`s and `DELETE`s of a reference table (every node has a copy) with a
//! lock on the table's shard that conflicts with every other write to it, `EXCLUSIVE`, held until
//! the transaction ends, on the coordinator and on the first worker, taken even when no row
//! matches.  On pg_tenancy's reference tables that lock is every tenant's: a member's
//! `DELETE FROM tenancy.api_keys WHERE false` in a transaction left open stopped every other
//! tenant's `create_api_key()` for as long as it stayed open (measured on Citus 14.0.1: a 2 s
//! timeout instead of 78 ms), and so did an administrator's `remove_member()`, which writes with
//! pg_tenancy's privileges in the caller's transaction.
//!
//! So each statement that writes one of pg_tenancy's reference tables runs with
//! `citus.all_modifications_commutative = on`, which makes that lock `ROW EXCLUSIVE` (it conflicts
//! with no other write): two writes of one row wait for each other on its row lock, as on one
//! node.  The setting is the statement's alone (saved and restored around its `ExecutorRun`, as a
//! function's `SET` clause is), whatever the session set; the application's own tables keep
//! Citus's default.  Citus's reason for the `EXCLUSIVE` lock is that two writes of one row could
//! reach the copies in different orders; with row locks they then wait for each other, and
//! Citus's distributed deadlock detection cancels one, as it does for any distributed deadlock.
use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREV_EXECUTOR_RUN: pg_sys::ExecutorRun_hook_type = None;

/// Install the hook (from `super::init`, at server start).  It does nothing where Citus is not
/// active.
pub(super) fn init() {
    // SAFETY: _PG_init runs once, single-threaded, before any query; we chain to the previous
    // hook.
    unsafe {
        PREV_EXECUTOR_RUN = pg_sys::ExecutorRun_hook;
        pg_sys::ExecutorRun_hook = Some(executor_run);
    }
}

#[cfg(not(feature = "pg18"))]
#[pg_guard]
unsafe extern "C-unwind" fn executor_run(
    query: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
    execute_once: bool,
) {
    // SAFETY: the executor's arguments, passed on unchanged.
    unsafe {
        with_commutative_writes(query, || match PREV_EXECUTOR_RUN {
            Some(prev) => prev(query, direction, count, execute_once),
            None => pg_sys::standard_ExecutorRun(query, direction, count, execute_once),
        })
    }
}

#[cfg(feature = "pg18")]
#[pg_guard]
unsafe extern "C-unwind" fn executor_run(
    query: *mut pg_sys::QueryDesc,
    direction: pg_sys::ScanDirection::Type,
    count: u64,
) {
    // SAFETY: the executor's arguments, passed on unchanged.
    unsafe {
        with_commutative_writes(query, || match PREV_EXECUTOR_RUN {
            Some(prev) => prev(query, direction, count),
            None => pg_sys::standard_ExecutorRun(query, direction, count),
        })
    }
}

/// Run `run` with `citus.all_modifications_commutative = on` when `query` writes (or locks rows
/// of) one of pg_tenancy's reference tables on Citus; as it is otherwise.
///
/// # Safety
/// `query` is the executor's valid QueryDesc.
unsafe fn with_commutative_writes(query: *mut pg_sys::QueryDesc, run: impl FnOnce()) {
    // SAFETY: a valid QueryDesc.
    if !unsafe { writes_reference_table(query) } {
        return run();
    }
    // SAFETY: a GUC nest level of this statement's own, left as PostgreSQL's function SET
    // clauses leave theirs: restored here, or by the (sub)transaction's abort on an ERROR.
    unsafe {
        let level = pg_sys::NewGUCNestLevel();
        crate::gucs::set(
            c"citus.all_modifications_commutative",
            c"on",
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucAction::GUC_ACTION_SAVE,
        );
        run();
        pg_sys::AtEOXact_GUC(true, level);
    }
}

/// Does the statement write, or lock rows of, one of pg_tenancy's reference tables on Citus?
///
/// # Safety
/// `query` is a valid QueryDesc.
unsafe fn writes_reference_table(query: *mut pg_sys::QueryDesc) -> bool {
    // SAFETY: a valid QueryDesc and its PlannedStmt.
    let (stmt, command) = unsafe {
        let stmt = (*query).plannedstmt;
        if stmt.is_null() {
            return false;
        }
        (stmt, (*stmt).commandType)
    };
    // SAFETY: as above.
    let locks_rows = unsafe { !(*stmt).rowMarks.is_null() };
    if command == pg_sys::CmdType::CMD_SELECT && !locks_rows
        || command == pg_sys::CmdType::CMD_UTILITY
        || !super::active()
    {
        return false;
    }
    // SAFETY: the statement's range table, a List of RangeTblEntry.
    let rtable = unsafe { pgrx::list::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable) };
    let found = rtable.iter_ptr().any(|rte| {
        // SAFETY: a valid RangeTblEntry of the list.
        let (kind, relid) = unsafe { ((*rte).rtekind, (*rte).relid) };
        kind == pg_sys::RTEKind::RTE_RELATION
            && matches!(super::placement(relid), super::Placement::Reference(_))
            && pg_tenancy_schema(relid)
    });
    found
}

/// Is `relid` in one of pg_tenancy's schemas (`tenancy`, `tenancy_private`)?
fn pg_tenancy_schema(relid: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookups by OID; the name is palloc'd, read at once.
    unsafe {
        let nsp = pg_sys::get_rel_namespace(relid);
        if nsp == pg_sys::InvalidOid {
            return false;
        }
        let name = pg_sys::get_namespace_name(nsp);
        !name.is_null()
            && matches!(
                std::ffi::CStr::from_ptr(name).to_bytes(),
                b"tenancy" | b"tenancy_private"
            )
    }
}
