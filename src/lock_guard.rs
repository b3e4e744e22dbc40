//! No application role blocks another tenant: a `ProcessUtility` hook that checks, before
//! PostgreSQL takes a lock, the privilege PostgreSQL would only check after taking it.
//!
//! Row Level Security does not apply to locks.  Two ways remain for a role that may run any SQL
//! to hold or queue for a lock that stops every other tenant:
//!
//! * `LOCK TABLE`, which any table-level UPDATE, DELETE or TRUNCATE privilege allows in every
//!   mode: `LOCK tenancy.api_keys IN ACCESS EXCLUSIVE MODE` would stop every tenant's
//!   authentication until the transaction ends.  On pg_tenancy's tables (schema `tenancy`, and
//!   users' tables with row level security forced, as `enable_tenant_isolation` leaves them), a
//!   role that does not own the table may take the modes ordinary statements take (ACCESS SHARE,
//!   ROW SHARE, ROW EXCLUSIVE) and no stronger one, also through a view of its own (`LOCK` on a
//!   view locks the view's tables: they are found through the view's dependencies).  A strong
//!   LOCK is looked up and checked by the hook itself, on every relation of the cluster: first
//!   what PostgreSQL checks before it locks (transaction block, relation kind, privilege, and for
//!   what is under a view, the privilege of the view's owner or invoker), then this rule; only
//!   then is anything locked, so a LOCK that fails never queues.
//! * Statements that request a lock on a table they name before checking any privilege on it,
//!   measured on PostgreSQL 15: `CREATE RULE` (ACCESS EXCLUSIVE, and held while the rule's query
//!   waits for another table), `CREATE TABLE … PARTITION OF`, `ALTER TABLE … ATTACH/DETACH
//!   PARTITION` (ACCESS EXCLUSIVE), `CREATE [CONSTRAINT] TRIGGER` and a foreign key to it, even
//!   from a temporary table (SHARE ROW EXCLUSIVE), `INHERITS`, `ALTER TABLE … INHERIT`, comments
//!   and statistics on it (SHARE UPDATE EXCLUSIVE).  A failed check releases the lock, but
//!   queueing for it already made every later reader or writer of the table queue behind the
//!   request, for as long as whatever it waits for lasts.  For these, the privilege check
//!   PostgreSQL makes after the lock is made first and fails the same way (42501), without any
//!   lock.  It applies to every table: a statement that passes it would have passed PostgreSQL's
//!   own check.  Statements inside functions and `DO` blocks go through the hook too.
//!
//! What remains (docs/security.md): the locks a role's own rows give it (row locks, FOR UPDATE on
//! its tenant's rows), ACCESS SHARE or ROW EXCLUSIVE held by an open transaction (which only DDL
//! waits for: pg_tenancy's maintenance uses `lock_timeout`), and the cost of many sessions.
use crate::error::raise;
use pgrx::list::PgList;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::CStr;

static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

/// Install the hook.  From `_PG_init` at server start (`shared_preload_libraries`).
pub fn init() {
    // SAFETY: _PG_init runs once, single-threaded, before any statement; we chain to the previous hook.
    unsafe {
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: the utility statement of a valid PlannedStmt, or NULL.
    unsafe {
        if !pstmt.is_null() {
            // Citus copies from a distributed table through connections of its own, without an
            // executor: the context it would send must be the coordinator's first.
            if is((*pstmt).utilityStmt, pg_sys::NodeTag::T_CopyStmt) {
                crate::citus::reissue_if_lost();
            }
            crate::citus::refuse_foreign_set((*pstmt).utilityStmt);
            crate::citus::receive((*pstmt).utilityStmt, context);
            crate::citus::internals::check_utility((*pstmt).utilityStmt, context);
            crate::session_state::check_utility((*pstmt).utilityStmt);
        }
    }
    let (mut pstmt, mut read_only_tree) = (pstmt, read_only_tree);
    // SAFETY: a valid PlannedStmt.
    if let Some(copy) = unsafe { crate::citus::keep_worker_logins(pstmt, context) } {
        (pstmt, read_only_tree) = (copy, false);
    }
    // SAFETY: the utility statement of a valid PlannedStmt.  `check` qualifies the names it
    // resolves in place, so a tree the caller keeps (read_only_tree) is copied first.
    unsafe {
        if !pstmt.is_null() && !pg_sys::superuser() && checked((*pstmt).utilityStmt) {
            if read_only_tree {
                pstmt = pg_sys::copyObjectImpl(pstmt as *const std::ffi::c_void).cast();
                read_only_tree = false;
            }
            QUALIFY.with(|q| q.set(true));
            if is((*pstmt).utilityStmt, pg_sys::NodeTag::T_LockStmt) {
                // PostgreSQL's first check of a LOCK, before anything is locked.
                pg_sys::RequireTransactionBlock(
                    context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL,
                    c"LOCK TABLE".as_ptr(),
                );
            }
            check((*pstmt).utilityStmt);
        }
        match PREV_PROCESS_UTILITY {
            Some(prev) => prev(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
}

/// What a statement needs on a relation it would lock first.
#[derive(Clone, Copy)]
enum Need {
    Owner,
    References,
    Trigger,
}

unsafe fn is(node: *mut pg_sys::Node, tag: pg_sys::NodeTag) -> bool {
    // SAFETY: the caller passes a node pointer or NULL.
    unsafe { !node.is_null() && (*node).type_ == tag }
}

/// Is `node` a statement [`check`] looks at?
unsafe fn checked(node: *mut pg_sys::Node) -> bool {
    use pg_sys::NodeTag::*;
    // SAFETY: a node pointer or NULL.
    !node.is_null()
        && matches!(
            unsafe { (*node).type_ },
            T_LockStmt
                | T_CreateTrigStmt
                | T_RuleStmt
                | T_CommentStmt
                | T_SecLabelStmt
                | T_CreateStmt
                | T_CreateForeignTableStmt
                | T_CreateSchemaStmt
                | T_AlterTableStmt
                | T_CreateStatsStmt
                | T_VacuumStmt
                | T_AlterObjectDependsStmt
        )
}

unsafe fn check(node: *mut pg_sys::Node) {
    use pg_sys::NodeTag::*;
    // SAFETY: each cast follows the node's tag.
    unsafe {
        if node.is_null() {
            return;
        }
        match (*node).type_ {
            T_LockStmt => {
                let s = node as *mut pg_sys::LockStmt;
                if (*s).mode > pg_sys::RowExclusiveLock as i32 {
                    for rv in PgList::<pg_sys::RangeVar>::from_pg((*s).relations).iter_ptr() {
                        lock_allowed(rv, (*s).mode, (*s).nowait);
                    }
                }
            }
            T_CreateTrigStmt => {
                require(
                    (*(node as *mut pg_sys::CreateTrigStmt)).relation,
                    Need::Trigger,
                );
            }
            T_RuleStmt => require((*(node as *mut pg_sys::RuleStmt)).relation, Need::Owner),
            T_CommentStmt => {
                let s = node as *mut pg_sys::CommentStmt;
                object_of((*s).objtype, (*s).object);
            }
            T_SecLabelStmt => {
                let s = node as *mut pg_sys::SecLabelStmt;
                object_of((*s).objtype, (*s).object);
            }
            T_CreateStmt => create_stmt(node as *mut pg_sys::CreateStmt),
            T_CreateForeignTableStmt => {
                create_stmt(&mut (*(node as *mut pg_sys::CreateForeignTableStmt)).base)
            }
            T_CreateSchemaStmt => {
                // CREATE SCHEMA … CREATE TABLE … REFERENCES …: each element on its own.
                let s = node as *mut pg_sys::CreateSchemaStmt;
                let before = QUALIFY.with(|q| q.replace(false));
                for element in PgList::<pg_sys::Node>::from_pg((*s).schemaElts).iter_ptr() {
                    check(element);
                }
                QUALIFY.with(|q| q.set(before));
            }
            T_AlterTableStmt => {
                let s = node as *mut pg_sys::AlterTableStmt;
                for cmd in PgList::<pg_sys::AlterTableCmd>::from_pg((*s).cmds).iter_ptr() {
                    let def = (*cmd).def;
                    if is(def, T_RangeVar) {
                        // INHERIT parent
                        require(def as *mut pg_sys::RangeVar, Need::Owner);
                    } else if is(def, T_PartitionCmd) {
                        // ATTACH / DETACH PARTITION child
                        require((*(def as *mut pg_sys::PartitionCmd)).name, Need::Owner);
                    } else {
                        foreign_key(def);
                    }
                }
            }
            T_CreateStatsStmt => {
                let s = node as *mut pg_sys::CreateStatsStmt;
                for n in PgList::<pg_sys::Node>::from_pg((*s).relations).iter_ptr() {
                    if is(n, T_RangeVar) {
                        require(n as *mut pg_sys::RangeVar, Need::Owner);
                    }
                }
            }
            T_VacuumStmt => {
                // VACUUM / ANALYZE of a partitioned table queue for each partition's lock (ACCESS
                // EXCLUSIVE for FULL) before checking the privilege on it.
                let s = node as *mut pg_sys::VacuumStmt;
                for r in PgList::<pg_sys::VacuumRelation>::from_pg((*s).rels).iter_ptr() {
                    let Some(relid) = resolve((*r).relation) else {
                        continue;
                    };
                    if protected(relid) && !may_maintain(relid) {
                        raise(
                            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                            format!(
                                "must be owner of table {} to vacuum or analyze it",
                                rel_name(relid)
                            ),
                            Some(BEFORE_LOCK),
                        );
                    }
                }
            }
            T_AlterObjectDependsStmt => {
                let s = node as *mut pg_sys::AlterObjectDependsStmt;
                if !(*s).relation.is_null() {
                    require((*s).relation, Need::Owner);
                }
            }
            _ => {}
        }
    }
}

/// CREATE TABLE: the tables it inherits from or is a partition of (their owner only), and the
/// tables its foreign keys reference (REFERENCES).
unsafe fn create_stmt(s: *mut pg_sys::CreateStmt) {
    // SAFETY: a CreateStmt of the statement.
    unsafe {
        for rv in PgList::<pg_sys::RangeVar>::from_pg((*s).inhRelations).iter_ptr() {
            require(rv, Need::Owner);
        }
        foreign_keys((*s).constraints);
        foreign_keys((*s).tableElts);
    }
}

/// The object of COMMENT ON / SECURITY LABEL ON, when it is a table or one of its columns.
unsafe fn object_of(objtype: pg_sys::ObjectType::Type, object: *mut pg_sys::Node) {
    use pg_sys::ObjectType::*;
    // SAFETY: for these object types the object is a List of name Strings.
    unsafe {
        if !is(object, pg_sys::NodeTag::T_List) {
            return;
        }
        let names = object as *mut pg_sys::List;
        match objtype {
            // Comments on triggers, policies, rules and constraints lock their table in ACCESS
            // SHARE only: nothing to check first.
            OBJECT_TABLE | OBJECT_VIEW | OBJECT_MATVIEW | OBJECT_FOREIGN_TABLE => {
                require_names(names, 0)
            }
            OBJECT_COLUMN => require_names(names, 1),
            _ => {}
        }
    }
}

/// Every foreign key among `elements` (table constraints, or column definitions with theirs).
unsafe fn foreign_keys(elements: *mut pg_sys::List) {
    // SAFETY: a List of nodes or NIL.
    unsafe {
        for n in PgList::<pg_sys::Node>::from_pg(elements).iter_ptr() {
            foreign_key(n);
        }
    }
}

unsafe fn foreign_key(n: *mut pg_sys::Node) {
    use pg_sys::NodeTag::*;
    // SAFETY: casts follow the tags.
    unsafe {
        if is(n, T_Constraint) {
            let c = n as *mut pg_sys::Constraint;
            if (*c).contype == pg_sys::ConstrType::CONSTR_FOREIGN && !(*c).pktable.is_null() {
                require((*c).pktable, Need::References);
            }
        } else if is(n, T_ColumnDef) {
            foreign_keys((*(n as *mut pg_sys::ColumnDef)).constraints);
        }
    }
}

/// The relation named by `names` without its last `drop` names (the object's own name).
unsafe fn require_names(names: *mut pg_sys::List, drop: usize) {
    // SAFETY: a List of String nodes; copied before truncating.
    unsafe {
        let n = PgList::<pg_sys::Node>::from_pg(names).len();
        if n <= drop {
            return;
        }
        let relation = pg_sys::list_truncate(pg_sys::list_copy(names), (n - drop) as i32);
        require(pg_sys::makeRangeVarFromNameList(relation), Need::Owner);
    }
}

thread_local! {
    /// Inside CREATE SCHEMA's elements, names are looked up against the path the new schema will
    /// head: they are checked, but not qualified (a table the same statement creates would be
    /// shadowed).
    static QUALIFY: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// The relation `rv` names (by the same search PostgreSQL will make, without locking it), and
/// `rv` qualified with its schema: the statement can then only find a relation of that name in
/// that schema, not another one put earlier on the search path between the check and
/// PostgreSQL's own lookup.  (A relation of the same name in the same schema is the caller's
/// own: only its owner can drop and re-create it, and a LOCK, where a view would matter, is
/// looked up and locked at once: `lock_allowed`.)
unsafe fn resolve(rv: *mut pg_sys::RangeVar) -> Option<pg_sys::Oid> {
    // SAFETY: NoLock with RVR_MISSING_OK: a lookup only; a missing relation is PostgreSQL's to report.
    unsafe {
        let oid = pg_sys::RangeVarGetRelidExtended(
            rv,
            pg_sys::NoLock as pg_sys::LOCKMODE,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        );
        if oid == pg_sys::InvalidOid {
            return None;
        }
        qualify(rv, oid);
        Some(oid)
    }
}

/// Give `rv` the schema of `oid` when it has none (see [`resolve`]).
unsafe fn qualify(rv: *mut pg_sys::RangeVar, oid: pg_sys::Oid) {
    // SAFETY: rv is a node of our copy of the statement; the name is palloc'd.
    unsafe {
        if (*rv).schemaname.is_null() && QUALIFY.with(std::cell::Cell::get) {
            (*rv).schemaname = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(oid));
        }
    }
}

fn owns(relid: pg_sys::Oid) -> bool {
    // SAFETY: catalog checks for the current user.
    unsafe {
        let me = pg_sys::GetUserId();
        #[cfg(any(feature = "pg14", feature = "pg15"))]
        {
            pg_sys::pg_class_ownercheck(relid, me)
        }
        #[cfg(not(any(feature = "pg14", feature = "pg15")))]
        {
            pg_sys::object_ownercheck(pg_sys::RelationRelationId, relid, me)
        }
    }
}

/// May the current user VACUUM or ANALYZE `relid`: its owner, the database's owner, or (17+) a
/// holder of MAINTAIN on it?
fn may_maintain(relid: pg_sys::Oid) -> bool {
    if owns(relid) {
        return true;
    }
    // SAFETY: catalog checks for the current user.
    unsafe {
        let me = pg_sys::GetUserId();
        #[cfg(any(feature = "pg14", feature = "pg15"))]
        let db_owner = pg_sys::pg_database_ownercheck(pg_sys::MyDatabaseId, me);
        #[cfg(not(any(feature = "pg14", feature = "pg15")))]
        let db_owner =
            pg_sys::object_ownercheck(pg_sys::DatabaseRelationId, pg_sys::MyDatabaseId, me);
        #[cfg(any(feature = "pg17", feature = "pg18"))]
        let maintain =
            pg_sys::pg_class_aclcheck(relid, me, pg_sys::ACL_MAINTAIN as pg_sys::AclMode)
                == pg_sys::AclResult::ACLCHECK_OK;
        #[cfg(not(any(feature = "pg17", feature = "pg18")))]
        let maintain = false;
        db_owner || maintain
    }
}

fn rel_name(relid: pg_sys::Oid) -> String {
    // SAFETY: get_rel_name returns a palloc'd copy or NULL.
    unsafe {
        let name = pg_sys::get_rel_name(relid);
        if name.is_null() {
            return relid.to_u32().to_string();
        }
        CStr::from_ptr(name).to_string_lossy().into_owned()
    }
}

const BEFORE_LOCK: &str = "pg_tenancy checks this before PostgreSQL locks the table, so that the attempt cannot make other sessions wait.";

unsafe fn require(rv: *mut pg_sys::RangeVar, need: Need) {
    // SAFETY: rv is a RangeVar of the statement.
    let Some(relid) = (unsafe { resolve(rv) }) else {
        return;
    };
    let ok = match need {
        Need::Owner => owns(relid),
        Need::References | Need::Trigger => {
            let mode = match need {
                Need::References => pg_sys::ACL_REFERENCES,
                _ => pg_sys::ACL_TRIGGER,
            };
            // SAFETY: an ACL check for the current user.
            unsafe {
                pg_sys::pg_class_aclcheck(relid, pg_sys::GetUserId(), mode as pg_sys::AclMode)
                    == pg_sys::AclResult::ACLCHECK_OK
            }
        }
    };
    if !ok {
        let message = match need {
            Need::Owner => format!("must be owner of table {}", rel_name(relid)),
            _ => format!("permission denied for table {}", rel_name(relid)),
        };
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            message,
            Some(BEFORE_LOCK),
        );
    }
}

/// Is `relid` one of pg_tenancy's tables, or a table it isolates (row level security forced)?
fn protected(relid: pg_sys::Oid) -> bool {
    // SAFETY: syscache lookups; the tuple is released before returning.
    unsafe {
        let tenancy = pg_sys::get_namespace_oid(c"tenancy".as_ptr(), true);
        if tenancy != pg_sys::InvalidOid && pg_sys::get_rel_namespace(relid) == tenancy {
            return true;
        }
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(relid),
        );
        if tuple.is_null() {
            return false;
        }
        let class = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_class>(tuple);
        let forced = (*class).relrowsecurity && (*class).relforcerowsecurity;
        pg_sys::ReleaseSysCache(tuple);
        forced
    }
}

const MODES: [&str; 9] = [
    "",
    "ACCESS SHARE",
    "ROW SHARE",
    "ROW EXCLUSIVE",
    "SHARE UPDATE EXCLUSIVE",
    "SHARE",
    "SHARE ROW EXCLUSIVE",
    "EXCLUSIVE",
    "ACCESS EXCLUSIVE",
];

fn refuse_lock(relid: pg_sys::Oid, mode: i32) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "permission denied to lock table {} in {} MODE",
            rel_name(relid),
            MODES.get(mode as usize).copied().unwrap_or("this")
        ),
        Some("Only the table's owner takes locks stronger than ROW EXCLUSIVE on pg_tenancy's tables: they would make every tenant wait."),
    )
}

/// Privileges that allow a LOCK stronger than ROW EXCLUSIVE (PostgreSQL's LockTableAclCheck;
/// only such LOCKs come here: weaker ones keep PostgreSQL's own callback).
const STRONG_LOCK_PRIVILEGES: u32 = {
    let base = pg_sys::ACL_UPDATE | pg_sys::ACL_DELETE | pg_sys::ACL_TRUNCATE;
    #[cfg(any(feature = "pg17", feature = "pg18"))]
    let base = base | pg_sys::ACL_MAINTAIN;
    base
};

/// Relation kinds LOCK takes (others: PostgreSQL refuses them, and a view's walk skips them).
fn lockable(relkind: std::ffi::c_char) -> bool {
    [
        pg_sys::RELKIND_RELATION,
        pg_sys::RELKIND_PARTITIONED_TABLE,
        pg_sys::RELKIND_VIEW,
    ]
    .contains(&(relkind as u8))
}

/// What PostgreSQL checks before it locks `rel` for a LOCK in `mode`, checked as `user` (the
/// current user for a named relation, a view's owner or invoker for what is under it), and our
/// rule on top: only its owner locks a protected table in a strong mode.  Raises as PostgreSQL
/// would (42501).
unsafe fn may_lock(rel: pg_sys::Oid, mode: i32, user: pg_sys::Oid) {
    if protected(rel) && !owns(rel) {
        refuse_lock(rel, mode);
    }
    // SAFETY: an ACL check; aclcheck_error raises.
    unsafe {
        let result =
            pg_sys::pg_class_aclcheck(rel, user, STRONG_LOCK_PRIVILEGES as pg_sys::AclMode);
        if result != pg_sys::AclResult::ACLCHECK_OK {
            let name = std::ffi::CString::new(rel_name(rel)).unwrap_or_default();
            pg_sys::aclcheck_error(
                result,
                pg_sys::get_relkind_objtype(pg_sys::get_rel_relkind(rel)),
                name.as_ptr(),
            );
        }
    }
}

/// The check of a LOCK's relation, made by RangeVarGetRelidExtended before it locks, in place of
/// PostgreSQL's RangeVarCallbackForLockTable (whose checks it makes first: relation kind and
/// privilege), and for a view, a first look at what is under it (unlocked; made again under
/// locks by [`view_tree`]), so that a LOCK that will be refused does not queue for the view.
#[pg_guard]
unsafe extern "C-unwind" fn check_before_lock(
    _rv: *const pg_sys::RangeVar,
    relid: pg_sys::Oid,
    _old: pg_sys::Oid,
    arg: *mut std::ffi::c_void,
) {
    if relid == pg_sys::InvalidOid {
        return; // PostgreSQL reports the missing relation
    }
    // SAFETY: arg is the LOCK's mode, passed below; syscache lookups.
    unsafe {
        let mode = *(arg as *const i32);
        let relkind = pg_sys::get_rel_relkind(relid);
        if relkind == 0 {
            return; // dropped meanwhile: PostgreSQL looks again
        }
        if !lockable(relkind) {
            raise(
                PgSqlErrorCode::ERRCODE_WRONG_OBJECT_TYPE,
                format!("cannot lock relation \"{}\"", rel_name(relid)),
                Some("LOCK takes tables and views only."),
            );
        }
        may_lock(relid, mode, pg_sys::GetUserId());
        if relkind as u8 == pg_sys::RELKIND_VIEW {
            view_tree(relid, mode, None);
        }
    }
}

/// A LOCK of `rv` in `mode` (stronger than ROW EXCLUSIVE): the relation is looked up and checked
/// before it is locked, then locked in that very mode (so PostgreSQL finds it locked, and nothing
/// is locked twice in two modes); for a view, everything under it is checked again under locks
/// ([`view_tree`]).
unsafe fn lock_allowed(rv: *mut pg_sys::RangeVar, mode: i32, nowait: bool) {
    let mut mode_arg = mode;
    // SAFETY: rv is a RangeVar of the LOCK statement; the callback raises before any lock.
    unsafe {
        let relid = pg_sys::RangeVarGetRelidExtended(
            rv,
            mode as pg_sys::LOCKMODE,
            if nowait {
                pg_sys::RVROption::RVR_NOWAIT
            } else {
                0
            },
            Some(check_before_lock),
            (&mut mode_arg as *mut i32).cast(),
        );
        qualify(rv, relid);
        if pg_sys::get_rel_relkind(relid) as u8 == pg_sys::RELKIND_VIEW {
            view_tree(relid, mode, Some(nowait));
        }
    }
}

/// Who PostgreSQL checks the relations under view `view` as: its invoker for a
/// `security_invoker` view (15+), else its owner.  `view` is locked.
unsafe fn checked_as(view: pg_sys::Oid) -> pg_sys::Oid {
    // SAFETY: the view is locked by the caller; its relcache entry is read and closed.
    unsafe {
        let rel = pg_sys::relation_open(view, pg_sys::NoLock as pg_sys::LOCKMODE);
        let owner = (*(*rel).rd_rel).relowner;
        #[cfg(not(feature = "pg14"))]
        let invoker = !(*rel).rd_options.is_null()
            && (*((*rel).rd_options as *const pg_sys::ViewOptions)).security_invoker;
        #[cfg(feature = "pg14")]
        let invoker = false;
        pg_sys::relation_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        if invoker {
            pg_sys::GetUserId()
        } else {
            owner
        }
    }
}

/// The tables and views under view `top`, as a LOCK on it would lock them (LockViewRecurse).
/// `lock: None`, a first look without locks: refuses any protected table the caller does not
/// own.  `lock: Some(nowait)`, with `top` locked: each relation is also checked as PostgreSQL will
/// check it (as the view above it says, [`checked_as`]) before anything is locked, and each view
/// under it is locked in `mode` before its definition is read, as LockViewRecurse will, so that
/// none can be redefined between the check and the LOCK.  At most 10,000 relations.
unsafe fn view_tree(top: pg_sys::Oid, mode: i32, lock: Option<bool>) {
    const MOST: usize = 10_000;
    let mut views = vec![top];
    let mut seen = std::collections::HashSet::from([top]);
    let mut i = 0;
    while i < views.len() {
        let view = views[i];
        i += 1;
        // SAFETY: `view` is locked when `lock` is set (top by the LOCK, the others below).
        let user = lock.map(|_| unsafe { checked_as(view) });
        for rel in view_relations(view) {
            // SAFETY: syscache lookups, and the lock LockViewRecurse would take anyway.
            unsafe {
                let relkind = pg_sys::get_rel_relkind(rel);
                if !seen.insert(rel) || !lockable(relkind) {
                    continue;
                }
                if seen.len() > MOST {
                    raise(
                        PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                        "LOCK on a view over more than 10000 relations is refused",
                        Some("pg_tenancy checks every table a LOCK on a view would lock; lock the tables themselves."),
                    );
                }
                match user {
                    Some(user) => may_lock(rel, mode, user),
                    None if protected(rel) && !owns(rel) => refuse_lock(rel, mode),
                    None => {}
                }
                if relkind as u8 != pg_sys::RELKIND_VIEW {
                    continue;
                }
                let locked = match lock {
                    Some(true) => pg_sys::ConditionalLockRelationOid(rel, mode as pg_sys::LOCKMODE),
                    Some(false) => {
                        pg_sys::LockRelationOid(rel, mode as pg_sys::LOCKMODE);
                        true
                    }
                    None => true,
                };
                if !locked {
                    raise(
                        PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
                        format!("could not obtain lock on relation \"{}\"", rel_name(rel)),
                        None,
                    );
                }
                views.push(rel);
            }
        }
    }
}

/// Well-known catalog OIDs, stable across PostgreSQL releases, that pgrx does not bind.
const REWRITE_RELATION_ID: u32 = 2618;
const DEPEND_RELATION_ID: u32 = 2608;
const DEPEND_DEPENDER_INDEX_ID: u32 = 2673;

/// The fixed-width row of pg_depend (catalog/pg_depend.h).
#[repr(C)]
struct PgDepend {
    classid: pg_sys::Oid,
    objid: pg_sys::Oid,
    objsubid: i32,
    refclassid: pg_sys::Oid,
    refobjid: pg_sys::Oid,
    refobjsubid: i32,
    deptype: std::ffi::c_char,
}

/// The relations view `view` reads: what its `_RETURN` rule depends on (pg_depend), which is
/// every relation of its query, subqueries included.
fn view_relations(view: pg_sys::Oid) -> Vec<pg_sys::Oid> {
    let mut out = Vec::new();
    // SAFETY: a syscache lookup released at once, then an index scan of pg_depend under the
    // catalog snapshot, closed before returning (or by abort on error).
    unsafe {
        let rule = pg_sys::SearchSysCache2(
            pg_sys::SysCacheIdentifier::RULERELNAME as i32,
            pg_sys::Datum::from(view),
            pg_sys::Datum::from(c"_RETURN".as_ptr()),
        );
        if rule.is_null() {
            return out;
        }
        // pg_rewrite's first column is its oid.
        let rule_oid = *pg_sys::heap_tuple_get_struct::<pg_sys::Oid>(rule);
        pg_sys::ReleaseSysCache(rule);
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let depend = pg_sys::table_open(pg_sys::Oid::from(DEPEND_RELATION_ID), lock);
        let mut keys: [pg_sys::ScanKeyData; 2] = std::mem::zeroed();
        for (key, (column, value)) in keys
            .iter_mut()
            .zip([(1, pg_sys::Oid::from(REWRITE_RELATION_ID)), (2, rule_oid)])
        {
            // pg_depend (classid, objid) = (pg_rewrite, the rule)
            pg_sys::ScanKeyInit(
                key,
                column,
                pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                pg_sys::Oid::from(pg_sys::F_OIDEQ),
                pg_sys::Datum::from(value),
            );
        }
        let scan = pg_sys::systable_beginscan(
            depend,
            pg_sys::Oid::from(DEPEND_DEPENDER_INDEX_ID),
            true,
            std::ptr::null_mut(),
            2,
            keys.as_mut_ptr(),
        );
        loop {
            let tuple = pg_sys::systable_getnext(scan);
            if tuple.is_null() {
                break;
            }
            let d = pg_sys::heap_tuple_get_struct::<PgDepend>(tuple);
            if (*d).refclassid == pg_sys::RelationRelationId && (*d).refobjid != view {
                out.push((*d).refobjid);
            }
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(depend, lock);
    }
    out
}
