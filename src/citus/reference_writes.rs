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
//! node.  (Row-locking reads, `FOR UPDATE` and `FOR SHARE`, Citus locks the same way whatever
//! the setting: a role that is not a superuser may not run them on these tables on Citus; a
//! member could, with its column `UPDATE` privileges, and stopped every tenant's API key and
//! member changes with `SELECT 1 FROM tenancy.api_keys WHERE false FOR UPDATE`.)  The setting is
//! the statement's alone (saved and restored around its `ExecutorRun`, as a
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

/// Run `run` with `citus.all_modifications_commutative = on` when `query` writes one of
/// pg_tenancy's reference tables on Citus; as it is otherwise.
///
/// # Safety
/// `query` is the executor's valid QueryDesc.
unsafe fn with_commutative_writes(query: *mut pg_sys::QueryDesc, run: impl FnOnce()) {
    // Citus opens its worker connections as a plan runs, not as it starts: a cursor declared
    // before a savepoint was released runs here first (src/citus.rs, `reissue_if_lost`).
    super::reissue_if_lost();
    // SAFETY: a valid QueryDesc.
    if !unsafe { writes_reference_table(query) } {
        return run();
    }
    crate::gucs::with_setting(c"citus.all_modifications_commutative", c"on", run)
}

/// Does the statement write one of pg_tenancy's reference tables on Citus?
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
    let modifying_cte = unsafe { (*stmt).hasModifyingCTE };
    if command == pg_sys::CmdType::CMD_UTILITY
        || command == pg_sys::CmdType::CMD_SELECT && !modifying_cte
        || !super::active()
    {
        return false;
    }
    // The tables it writes (a modifying CTE's too), not those it only reads: the application's
    // own tables keep Citus's default when a write of them reads pg_tenancy's.
    // SAFETY: the statement's range table, a List of RangeTblEntry.
    let rtable = unsafe { pgrx::list::PgList::<pg_sys::RangeTblEntry>::from_pg((*stmt).rtable) };
    let found = rtable.iter_ptr().any(|rte| {
        // SAFETY: a valid RangeTblEntry of the list.
        let written = unsafe { (*rte).rellockmode } >= pg_sys::RowExclusiveLock as i32;
        written && reference_table(rte)
    });
    found
}

/// Is `rte` one of pg_tenancy's reference tables?
fn reference_table(rte: *mut pg_sys::RangeTblEntry) -> bool {
    // SAFETY: a valid RangeTblEntry.
    let (kind, relid) = unsafe { ((*rte).rtekind, (*rte).relid) };
    kind == pg_sys::RTEKind::RTE_RELATION
        && matches!(super::placement(relid), super::Placement::Reference(_))
        && pg_tenancy_schema(relid)
}

/// From the planner hook, before Citus plans `parse`: a row-locking read (`FOR UPDATE`,
/// `FOR SHARE`, …) of one of pg_tenancy's reference tables, anywhere in the query (subqueries,
/// CTEs), by a role that is not a superuser, is refused (0A000).  Citus locks the table's whole
/// shard for it (`EXCLUSIVE` or `SHARE`, until the transaction ends) whatever
/// `citus.all_modifications_commutative` says; a member may run one with its column `UPDATE`
/// privileges, and `SELECT 1 FROM tenancy.api_keys WHERE false FOR UPDATE` left open stopped
/// every tenant's API key and member changes.  pg_tenancy's own row-locking reads run as a
/// superuser, on this node's copy (`crate::citus::row_lock_target`).
pub(super) fn refuse_row_locks(parse: *mut pg_sys::Query) {
    // SAFETY: the current user's attribute.
    if parse.is_null() || unsafe { pg_sys::superuser() } || !super::active() {
        return;
    }
    // SAFETY: a Query the planner was given; the walker only reads it.
    unsafe { locks_walk(parse.cast(), std::ptr::null_mut()) };
}

#[pg_guard]
unsafe extern "C-unwind" fn locks_walk(
    node: *mut pg_sys::Node,
    context: *mut std::ffi::c_void,
) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: nodes of a valid query tree.
    unsafe {
        if (*node).type_ == pg_sys::NodeTag::T_Query {
            let query = node as *mut pg_sys::Query;
            let rtable = pgrx::list::PgList::<pg_sys::RangeTblEntry>::from_pg((*query).rtable);
            let marks = pgrx::list::PgList::<pg_sys::RowMarkClause>::from_pg((*query).rowMarks);
            for mark in marks.iter_ptr() {
                let rti = (*mark).rti;
                if rti >= 1
                    && rtable
                        .get_ptr(rti as usize - 1)
                        .is_some_and(reference_table)
                {
                    crate::error::raise(
                        PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                        "on Citus, FOR UPDATE and FOR SHARE are refused on pg_tenancy's reference tables (users, tenants, memberships, api_keys): Citus would lock the whole table, for every tenant, until the transaction ends",
                        Some("Lock rows of your tenant's distributed tables, or change these tables through pg_tenancy's functions."),
                    );
                }
            }
            return pg_sys::query_tree_walker(query, Some(locks_walk), context, 0);
        }
        pg_sys::expression_tree_walker(node, Some(locks_walk), context)
    }
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
