//! What an application role may leave in a server connection: nothing that reaches the next
//! client, who may be another tenant.
//!
//! A transaction-pooling PgBouncer, Supavisor and PostgREST's own pool hand one server connection
//! from client to client.  The tenant context is transaction-local (src/context.rs); two other
//! things outlive the transaction and could run a client's code in the next client's
//! transaction, under that client's context:
//!
//! * **Temporary objects.**  `pg_temp` is searched first for relations and types: a member who
//!   created `pg_temp.uuid`, a domain whose check is a temporary function of its own, had that
//!   function run inside the next client's `'…'::uuid`, where it copied the client's rows into a
//!   temporary table the member read back later (found in review, 2026-12-01).  A temporary table
//!   or view named like an application table (`projects`) catches an unqualified name the same
//!   way.  The database's `TEMPORARY` privilege does not close it: PostgreSQL checks it only when
//!   a session first creates its temporary schema, so a connection where a role that holds it made
//!   one (the pooler's login role, a migration) lets every later role create temporary objects.
//!   So the application roles create no object in a temporary schema: tables, views, sequences,
//!   indexes, types, domains, functions, operators, anything PostgreSQL reports through its
//!   object-creation hook (`OAT_POST_CREATE`, with the new object's schema read from its catalog
//!   row, which is not yet visible to the syscache).
//! * **Prepared statements by name.**  A pooler that keeps the clients' prepared statements on the
//!   server connections (PgBouncer 1.21+ `max_prepared_statements`, Supavisor) prepares each under
//!   a name of its own (`PGBOUNCER_12`) and later sends only `Bind`/`Execute` with that name.  SQL's
//!   `DEALLOCATE PGBOUNCER_12; PREPARE PGBOUNCER_12 AS …` (plain SQL, which the pooler passes on)
//!   would put a client's own statement in place of another's, to run in that client's next
//!   transaction.  So the application roles may not run SQL's `PREPARE` nor `DEALLOCATE` one
//!   statement by name (`DEALLOCATE ALL` and `DISCARD`, which a pooler's reset runs, remain);
//!   the protocol's own prepared statements are untouched.
//!
//! Both are refused (42501) whenever the session acts for anon, authenticated or service_role:
//! the current user, the role `SET ROLE` chose or the login is one of them or a member of one,
//! `NOINHERIT` included (a login that switches to them per transaction, like PostgREST's
//! authenticator: its clients' SQL could `RESET ROLE` to it, or `SET ROLE` to any other role it
//! is a member of; found in review), unless the current user is a superuser.  Sessions of other
//! logins (a migration's, a reporting role's) may.  A `SECURITY DEFINER` function of a
//! non-superuser owner, called in such a session, may not either: what it created would stay on
//! the same connection.  pg_tenancy's own functions do neither.  Session settings (`SET` without
//! `LOCAL`) are not refused: docs/security.md, "What remains".
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREV_OBJECT_ACCESS: pg_sys::object_access_hook_type = None;

/// Install the extension's one object-access hook: objects created here, and (for Citus's own
/// functions, src/citus/internals.rs) functions about to run.  From `_PG_init` at server start
/// (`shared_preload_libraries`).
pub fn init() {
    // SAFETY: _PG_init runs once, single-threaded, before any statement; we chain to the
    // previous hook.
    unsafe {
        PREV_OBJECT_ACCESS = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    // SAFETY: the previous hook, with the arguments PostgreSQL gave us.
    unsafe {
        if let Some(prev) = PREV_OBJECT_ACCESS {
            prev(access, class_id, object_id, sub_id, arg);
        }
    }
    if access == pg_sys::ObjectAccessType::OAT_FUNCTION_EXECUTE
        && class_id == pg_sys::ProcedureRelationId
    {
        crate::citus::internals::function_executes(object_id);
        return;
    }
    // A column (sub_id > 0) belongs to a relation checked when it was created.
    if access != pg_sys::ObjectAccessType::OAT_POST_CREATE || sub_id != 0 {
        return;
    }
    // SAFETY: the current user's superuser status (cached by PostgreSQL).
    if unsafe { pg_sys::superuser() } {
        return;
    }
    let Some(namespace) = namespace_of_new(class_id, object_id) else {
        return;
    };
    // SAFETY: a comparison with this backend's temporary schemas.
    if unsafe { pg_sys::isTempOrTempToastNamespace(namespace) }
        && crate::roles::session_acts_for_application_role()
    {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "the application roles may not create temporary objects",
            Some(
                "A temporary object outlives the transaction, and a pooled server connection passes \
                 it to its next client, who may be another tenant.  Use a common table expression, \
                 or a table of your own schema with row level security.",
            ),
        );
    }
}

/// From the `ProcessUtility` hook (src/lock_guard.rs), before the statement runs: SQL's
/// `PREPARE`, and `DEALLOCATE` of one statement, refused to the application roles and their
/// members.
///
/// # Safety
/// `stmt` is a utility statement's node, or NULL.
pub unsafe fn check_utility(stmt: *mut pg_sys::Node) {
    if stmt.is_null() {
        return;
    }
    // SAFETY: a node's tag, and a DeallocateStmt's name when the tag says it is one.
    let by_name = unsafe {
        match (*stmt).type_ {
            pg_sys::NodeTag::T_PrepareStmt => true,
            pg_sys::NodeTag::T_DeallocateStmt => {
                !(*(stmt as *mut pg_sys::DeallocateStmt)).name.is_null()
            }
            _ => false,
        }
    };
    if by_name && crate::roles::session_acts_for_application_role() {
        raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "the application roles may not PREPARE or DEALLOCATE a statement by name in SQL",
            Some(
                "A pooler keeps its clients' prepared statements on the server connection under \
                 names of its own; replacing one would run your statement in another client's \
                 transaction.  Use your driver's prepared statements (the protocol's), or \
                 DEALLOCATE ALL.",
            ),
        );
    }
}

/// The schema of the object `object_id` of catalog `class_id` that the current command has just
/// created, or None when objects of that catalog have no schema.  Read from the catalog under
/// `SnapshotSelf`: the row is not yet visible to the syscache (no command counter increment has
/// happened since it was inserted), as in sepgsql's post-create checks.
fn namespace_of_new(class_id: pg_sys::Oid, object_id: pg_sys::Oid) -> Option<pg_sys::Oid> {
    // SAFETY: lookups in PostgreSQL's table of object classes; a class it does not know is
    // skipped before any of them could raise.
    let (index, oid_column, namespace_column) = unsafe {
        if !pg_sys::is_objectclass_supported(class_id) {
            return None;
        }
        let namespace_column = pg_sys::get_object_attnum_namespace(class_id);
        if namespace_column == pg_sys::InvalidAttrNumber as pg_sys::AttrNumber {
            return None;
        }
        (
            pg_sys::get_object_oid_index(class_id),
            pg_sys::get_object_attnum_oid(class_id),
            namespace_column,
        )
    };
    // SAFETY: an index scan of the catalog by OID under SnapshotSelf, closed before returning
    // (or by abort on error); the attribute is read from the tuple the scan returned.
    unsafe {
        let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
        let catalog = pg_sys::table_open(class_id, lock);
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut key,
            oid_column,
            pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
            pg_sys::Oid::from(pg_sys::F_OIDEQ),
            pg_sys::Datum::from(object_id),
        );
        let scan = pg_sys::systable_beginscan(
            catalog,
            index,
            true,
            std::ptr::addr_of_mut!(pg_sys::SnapshotSelfData),
            1,
            &mut key,
        );
        let tuple = pg_sys::systable_getnext(scan);
        let mut namespace = None;
        if !tuple.is_null() {
            let mut isnull = false;
            let datum = pg_sys::heap_getattr(
                tuple,
                namespace_column.into(),
                (*catalog).rd_att,
                &mut isnull,
            );
            if !isnull {
                namespace = Some(pg_sys::Oid::from(datum.value() as u32));
            }
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(catalog, lock);
        namespace
    }
}
