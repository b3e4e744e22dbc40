//! Citus's own functions, and a worker connection's session, out of an application role's reach.
//!
//! Every tenant's connections to a worker log in as the same role (`authenticated`, say), and
//! Citus trusts a caller of its internal functions by that role alone.  Three of them, which
//! PUBLIC may execute, let one tenant reach another's work:
//!
//! * `assign_distributed_transaction_id(node, number, stamp)` makes the calling backend part of
//!   any distributed transaction.  Citus keeps a transaction's intermediate results (a CTE's or
//!   subquery's rows, computed under the policies of the tenant who ran it) in files named by the
//!   role and that transaction: a member who took another tenant's open transaction's number read
//!   that tenant's rows with `read_intermediate_result()` (measured on Citus 14.0.1: an acme
//!   member read globex's projects).  Citus calls it itself only on a worker, in the command that
//!   begins each of its remote transactions (`BEGIN TRANSACTION ISOLATION LEVEL …;
//!   SELECT assign_distributed_transaction_id(…);`), never on the node a client is connected to.
//! * `lock_shard_resources(mode, shards)` and `lock_shard_metadata(mode, shards)` take any lock
//!   mode on any shard whose table the role may write, past the `LOCK` guard (src/lock_guard.rs):
//!   an `EXCLUSIVE` lock on `users`' shard stopped every tenant's writes to it.  Citus sends them
//!   itself, as the role, to the first worker (`SELECT lock_shard_resources(3, ARRAY[102008])`),
//!   to order writes to reference tables.
//!
//! * Citus's functions for its own connections and metadata (`citus_internal.*`, the
//!   `citus_internal_*` functions, the `worker_*` functions that apply DDL, copy or drop shards,
//!   `citus_unmark_object_distributed`, …) trust a caller by its application name, which any
//!   role may set to `citus_internal gpid=…`, or run any statement they are given: a member
//!   deleted another tenant's shard placement from the metadata
//!   (`citus_internal.delete_placement_metadata`), and with `worker_apply_shard_ddl_command`
//!   planted a temporary domain on a worker connection that ran its own function in the next
//!   tenant's queries.  Citus sends them as a superuser or a table's owner: the application
//!   roles (anon, authenticated, service_role and the roles with their privileges) may not call
//!   them at all, and inside a query on a worker they run no utility statement (but `SET
//!   LOCAL`).
//!
//! For a role that is not a superuser the first three run only as Citus sends them: on a worker, in a
//! connection Citus opened ([`super::consumer_gpid`]), as the whole command Citus sends (its
//! text, `debug_query_string`, is that command).  A client never sends a worker a command (only
//! Citus has the workers' passwords); what a client can make a worker run is an expression of
//! its own query, which Citus pushes down inside a query on a shard, never as such a command.
//! (`lock_relation_if_exists()`, which Citus sends only for foreign tables, is revoked from
//! PUBLIC by `tenancy.distribute()` instead.)
//!
//! The session of a worker connection outlives the transaction: the coordinator backend keeps it
//! for its next one, which may be another tenant's (a pooler hands the backend on).  A setting
//! a pushed-down `set_config(…, false)`, or a `SET` in a function, left there would apply to the
//! next tenant's queries (a `statement_timeout` of 1 ms, a `role`).  So on a worker, in a
//! connection Citus opened, a role that is not a superuser may not call `set_config()` at all,
//! nor run a session-level `SET` or `RESET` below the top level (the top level is Citus's own
//! commands: its `SET LOCAL`s).  A query's settings are the coordinator's to set.
//!
//! The functions are found by the executor's function-execution hook (`object_access_hook`,
//! installed by src/session_state.rs, `OAT_FUNCTION_EXECUTE`, which PostgreSQL calls as it prepares each function call of a plan,
//! PL/pgSQL's expressions included), by name in `pg_catalog`, once per function per backend.
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;

/// What a function is to this module.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// Anything else: no check.
    Other,
    /// `assign_distributed_transaction_id`.
    TransactionId,
    /// `lock_shard_resources`, `lock_shard_metadata`.
    ShardLock,
    /// `set_config`.
    SetConfig,
    /// `worker_save_query_explain_analyze`, `worker_partition_query_result`: they run the query
    /// text they are given, on this node, as the caller (a member wrote one copy of a reference
    /// table with it, outside the coordinator).  The application roles call them only inside
    /// Citus's own command (EXPLAIN ANALYZE, repartitioned results).
    QueryRunner,
    /// One of Citus's functions for its own connections and metadata (`citus_internal.*`,
    /// `citus_internal_*`, most `worker_*`, `*unmark_object_distributed`, …): refused to the
    /// application roles.
    CitusOwn,
}

thread_local! {
    /// Each function met, by OID; emptied when `pg_proc` changes.
    static KINDS: RefCell<HashMap<pg_sys::Oid, Kind>> = RefCell::new(HashMap::new());
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

/// A function call of a plan is being prepared (`OAT_FUNCTION_EXECUTE`, from the one
/// object-access hook, src/session_state.rs): refused when it is one of Citus's functions the
/// caller may not run here.
pub(crate) fn function_executes(oid: pg_sys::Oid) {
    check(oid);
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_kinds(_arg: pg_sys::Datum, _cache: i32, _hash: u32) {
    // Runs while invalidations are processed: no catalog access, and a borrow may be live.
    KINDS.with(|k| {
        if let Ok(mut k) = k.try_borrow_mut() {
            k.clear();
        }
    });
}

/// What the function `oid` is: one syscache lookup the first time, then a map's.
fn kind(oid: pg_sys::Oid) -> Kind {
    if let Some(k) = KINDS.with(|k| k.borrow().get(&oid).copied()) {
        return k;
    }
    if !WATCHING.with(Cell::get) {
        // SAFETY: registers a callback for this backend's life (once).
        unsafe {
            pg_sys::CacheRegisterSyscacheCallback(
                pg_sys::SysCacheIdentifier::PROCOID as i32,
                Some(forget_kinds),
                pg_sys::Datum::from(0),
            );
        }
        WATCHING.with(|w| w.set(true));
    }
    // SAFETY: a syscache lookup by OID; the tuple is released before returning.
    let k = unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::PROCOID as i32,
            pg_sys::Datum::from(oid),
        );
        if tuple.is_null() {
            return Kind::Other;
        }
        let proc = pg_sys::heap_tuple_get_struct::<pg_sys::FormData_pg_proc>(tuple);
        let name = CStr::from_ptr((*proc).proname.data.as_ptr()).to_bytes();
        let catalog = (*proc).pronamespace == pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE);
        let k = match name {
            b"assign_distributed_transaction_id" if catalog => Kind::TransactionId,
            b"lock_shard_resources" | b"lock_shard_metadata" if catalog => Kind::ShardLock,
            b"set_config" if catalog => Kind::SetConfig,
            b"worker_save_query_explain_analyze" | b"worker_partition_query_result"
                if of_citus(oid) =>
            {
                Kind::QueryRunner
            }
            _ if citus_own(name, (*proc).pronamespace) && of_citus(oid) => Kind::CitusOwn,
            _ => Kind::Other,
        };
        pg_sys::ReleaseSysCache(tuple);
        k
    };
    KINDS.with(|m| m.borrow_mut().insert(oid, k));
    k
}

/// Is a function of this name, in schema `nsp`, one of Citus's own (if it is Citus's)?  Its
/// internal schema, its `citus_internal_*` functions, its `worker_*` functions (which Citus sends,
/// as a table's owner, to apply DDL, copy shards, drop tables, and which run any statement they
/// are given) but those a member's query needs (hashing, partial aggregates, repartitioned
/// results, EXPLAIN ANALYZE, sizes), and the functions that unmark distributed objects or run a
/// command.
fn citus_own(name: &[u8], nsp: pg_sys::Oid) -> bool {
    // SAFETY: a syscache lookup of a namespace's name.
    let internal_schema = unsafe {
        let n = pg_sys::get_namespace_name(nsp);
        !n.is_null() && CStr::from_ptr(n).to_bytes() == b"citus_internal"
    };
    internal_schema
        || name.starts_with(b"citus_internal")
        || name.starts_with(b"worker_")
            && !name.starts_with(b"worker_partial_agg")
            && !name.starts_with(b"worker_partitioned_")
            && !matches!(
                name,
                b"worker_hash"
                    | b"worker_binary_partial_agg_ffunc"
                    | b"worker_last_saved_explain_analyze"
            )
        || matches!(
            name,
            b"citus_unmark_object_distributed"
                | b"master_unmark_object_distributed"
                | b"alter_role_if_exists"
                | b"citus_run_local_command"
                | b"master_remove_partition_metadata"
                | b"master_remove_distributed_table_metadata_from_workers"
        )
}

/// Is function `oid` a member of the `citus` extension?
fn of_citus(oid: pg_sys::Oid) -> bool {
    // SAFETY: catalog lookups (pg_depend, pg_extension) in a transaction.
    unsafe {
        let citus = pg_sys::get_extension_oid(c"citus".as_ptr(), true);
        citus != pg_sys::InvalidOid
            && pg_sys::getExtensionOfObject(pg_sys::ProcedureRelationId, oid) == citus
    }
}

/// The command this backend is running, as its client sent it.
fn command() -> Option<&'static str> {
    // SAFETY: PostgreSQL's pointer to the current command's text, valid while it runs.
    unsafe {
        let q = pg_sys::debug_query_string;
        if q.is_null() {
            None
        } else {
            CStr::from_ptr(q).to_str().ok()
        }
    }
}

/// The expression `build` makes, compiled once, into `cell`.
fn compiled(
    cell: &'static std::sync::OnceLock<regex::Regex>,
    build: impl FnOnce() -> String,
) -> &'static regex::Regex {
    cell.get_or_init(|| regex::Regex::new(&build()).expect("a valid expression"))
}

/// Does `command` match the expression `build` makes (compiled once, into `cell`)?
fn matches(
    cell: &'static std::sync::OnceLock<regex::Regex>,
    command: &str,
    build: impl FnOnce() -> String,
) -> bool {
    compiled(cell, build).is_match(command)
}

/// A string constant as Citus quotes one (`quote_literal`: no cast).
const LITERAL: &str = r"E?'(?:[^']|'')*'";

/// Citus's command that begins a remote transaction: `BEGIN TRANSACTION ISOLATION LEVEL …;`,
/// the transaction's `SET LOCAL`s and `SAVEPOINT`s, then
/// `SELECT assign_distributed_transaction_id(<node>, <number>, '<stamp>');`.
fn is_citus_begin(command: &str) -> bool {
    static BEGIN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    matches(&BEGIN, command, || {
        r"(?s)\ABEGIN TRANSACTION ISOLATION LEVEL [A-Z ]+;.*SELECT assign_distributed_transaction_id\(-?[0-9]+, [0-9]+, '[^']*'\);\z".into()
    })
}

/// Citus's command that locks shards on the first worker:
/// `SELECT lock_shard_resources(<mode>, ARRAY[<shard>, …])` (or `lock_shard_metadata`).
fn is_citus_shard_lock(command: &str) -> bool {
    static LOCK: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    matches(&LOCK, command, || {
        r"\ASELECT lock_shard_(resources|metadata)\([0-9]+, ARRAY\[[0-9]+(, [0-9]+)*\]\)\z".into()
    })
}

/// A command of Citus's own that calls one function with constant arguments, as Citus sends
/// them to a worker to propagate DDL (`SELECT worker_create_or_replace_object('CREATE FUNCTION
/// …')`, after `SET`s of its settings): a role's own objects are created on the workers as that
/// role.  A query Citus pushes down from a client's always reads a shard: it has a FROM.
fn is_citus_call(command: &str) -> Option<String> {
    static CALL: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    compiled(&CALL, || {
        let literal = format!(r"{LITERAL}(?:::[a-z_.]+(?:\[\])?)?");
        let argument = format!(
            r"(?:{literal}|-?[0-9]+|true|false|NULL|ARRAY\[\s*(?:{literal}\s*,?\s*)*\](?:::[a-z_.]+\[\])?)"
        );
        format!(
            r"\A(?:SET [a-z_.]+ (?:TO|=) {literal}\s*;\s*)*SELECT (?:pg_catalog\.|citus_internal\.)?(?P<name>[a-z_]+)\(\s*(?:{argument}\s*,?\s*)*\)\s*;?\s*\z"
        )
    })
    .captures(command)
    .map(|c| c["name"].to_string())
}

/// Is the command this backend runs Citus's own call of function `oid` (its DDL propagation, or
/// the recording of a new object's metadata)?  The function the executor prepares must be the
/// one the command calls, not one called inside it (a function a role distributed itself, which
/// Citus would call the same way).
fn calls(command: &str, oid: pg_sys::Oid) -> bool {
    // SAFETY: a function's name, palloc'd, read at once.
    let name = unsafe {
        let n = pg_sys::get_func_name(oid);
        if n.is_null() {
            return false;
        }
        CStr::from_ptr(n).to_string_lossy().into_owned()
    };
    match is_citus_call(command) {
        Some(called) => called == name,
        None => name == "add_object_metadata" && is_citus_object_metadata(command),
    }
}

/// Citus's command that records a role's new object (a function it created) in a worker's
/// metadata, as that role: `WITH distributed_object_data(…)  AS (VALUES (<constants>), …)
/// SELECT citus_internal.add_object_metadata(…) FROM distributed_object_data;`.  Its constants
/// are Citus's own quoting (no cast inside an ARRAY), which a deparsed client query has not.
fn is_citus_object_metadata(command: &str) -> bool {
    static METADATA: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    matches(&METADATA, command, || {
        let value = format!(
            r"(?:{LITERAL}|ARRAY\[(?:{LITERAL}(?:, )?)*\]::text\[\]|-?[0-9]+|true|false|NULL)"
        );
        let row = format!(r"\((?:{value}(?:, )?)+\)");
        format!(
            r"\AWITH distributed_object_data\(typetext, objnames, objargs, distargumentindex, colocationid, force_delegation\) +AS \(VALUES {row}(?:, {row})*\) SELECT citus_internal\.add_object_metadata\(typetext, objnames, objargs, distargumentindex::int, colocationid::int, force_delegation::bool\) FROM distributed_object_data;?\z"
        )
    })
}

/// Citus's commands that run a query through `worker_save_query_explain_analyze()` (EXPLAIN
/// ANALYZE) or `worker_partition_query_result()` (repartitioned results): the query is a literal
/// of Citus's own quoting, which no query Citus deparses from a client's has (its literals carry
/// casts).
fn is_citus_query_runner(command: &str) -> bool {
    static RUNNER: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    matches(&RUNNER, command, || {
        format!(
            r"(?s)\A(?:WITH unused AS \(SELECT .*\) )?SELECT \*? FROM worker_save_query_explain_analyze\({LITERAL}, {LITERAL}\) AS \([^';]*\)\z|\ASELECT partition_index, {LITERAL} \|\| '_' \|\| partition_index::text , rows_written FROM (?:pg_catalog\.)?worker_partition_query_result\({LITERAL},{LITERAL},[0-9]+,{LITERAL},[^;]*\) WHERE rows_written > 0\z"
        )
    })
}

/// Refuse the call of function `oid` that the executor is about to prepare, when it is one of
/// this module's and the caller may not make it (module documentation).
fn check(oid: pg_sys::Oid) {
    let kind = kind(oid);
    // SAFETY: the current user's attribute (cached by PostgreSQL for the last role asked).
    if kind == Kind::Other || unsafe { pg_sys::superuser() } {
        return;
    }
    // Citus's own command: a worker connection Citus opened, and a call the command's own plan
    // makes (prepared while no executor runs), not one of a query run inside it (a member's
    // EXPLAIN ANALYZE runs the member's query inside Citus's worker_save_query_explain_analyze()
    // command, under the same command text).
    let from_citus =
        super::consumer_gpid().is_some() && !crate::context::statements::executor_running();
    let (allowed, message, hint) = match kind {
        Kind::TransactionId => (
            from_citus && command().is_some_and(is_citus_begin),
            "assign_distributed_transaction_id() is Citus's own: a role that is not a superuser may not join another distributed transaction",
            "Citus assigns a transaction's identity itself.",
        ),
        Kind::ShardLock => (
            from_citus && command().is_some_and(is_citus_shard_lock),
            "lock_shard_resources() and lock_shard_metadata() are Citus's own: a role that is not a superuser may not lock shards with them",
            "Citus takes the locks a statement needs itself.",
        ),
        Kind::SetConfig => (
            !from_citus,
            "set_config() does not run on a Citus worker: its setting would stay on a connection other tenants' queries use next",
            "Set what a query needs on the coordinator, before the query.",
        ),
        Kind::QueryRunner => (
            !crate::roles::current_user_is_application_role() || from_citus && command().is_some_and(is_citus_query_runner),
            "this Citus function runs the query it is given: the application roles may not call it",
            "Citus calls it itself, for EXPLAIN ANALYZE and repartitioned results.",
        ),
        Kind::CitusOwn => (
            !crate::roles::current_user_is_application_role() || from_citus && command().is_some_and(|c| calls(c, oid)),
            "this Citus function is Citus's own: the application roles may not call it",
            "Citus calls it itself, as a superuser or a table's owner.",
        ),
        Kind::Other => (true, "", ""),
    };
    if !allowed {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            message,
            Some(hint),
        );
    }
}

/// From the utility hook, for a role that is not a superuser:
///
/// * on a worker, in a connection Citus opened, a session-level `SET` or `RESET` below the top
///   level (in a function a pushed-down query called) is refused (module documentation);
///   `SET LOCAL` passes: it ends with the transaction;
/// * on Citus, `CREATE SUBSCRIPTION … WITH (citus_use_authinfo)` is refused: Citus would add the
///   password `pg_dist_authinfo` holds for the caller (an application role's worker password) to
///   a connection string the caller chose, to any host.
///
/// # Safety
/// `stmt` is a valid utility statement node, or NULL.
pub unsafe fn check_utility(stmt: *mut pg_sys::Node, context: pg_sys::ProcessUtilityContext::Type) {
    // SAFETY: a valid utility statement node; the current user's attribute.
    unsafe {
        if stmt.is_null() || pg_sys::superuser() {
            return;
        }
        match (*stmt).type_ {
            _ if context != pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL
                && (*stmt).type_ != pg_sys::NodeTag::T_VariableSetStmt
                && super::consumer_gpid().is_some()
                && crate::roles::current_user_is_application_role() =>
            {
                crate::error::raise(
                    PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                    "an application role runs no utility statement inside a query on a Citus worker: what it created or changed would stay on a connection other tenants' queries use next",
                    None,
                );
            }
            pg_sys::NodeTag::T_VariableSetStmt => {
                let set = stmt as *mut pg_sys::VariableSetStmt;
                if context != pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL
                    && !(*set).is_local
                    && super::consumer_gpid().is_some()
                {
                    crate::error::raise(
                        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                        "a session-level SET does not run on a Citus worker: it would stay on a connection other tenants' queries use next",
                        Some("Use SET LOCAL, or set what a query needs on the coordinator."),
                    );
                }
            }
            pg_sys::NodeTag::T_CreateSubscriptionStmt => {
                let create = stmt as *mut pg_sys::CreateSubscriptionStmt;
                let authinfo = pgrx::list::PgList::<pg_sys::DefElem>::from_pg((*create).options)
                    .iter_ptr()
                    .any(|d| {
                        !(*d).defname.is_null()
                            && CStr::from_ptr((*d).defname).to_bytes() == b"citus_use_authinfo"
                    });
                if authinfo && super::active() {
                    crate::error::raise(
                        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                        "citus_use_authinfo is a superuser's option: it would send the caller's worker password to the subscription's host",
                        None,
                    );
                }
            }
            _ => {}
        }
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::{
        is_citus_begin, is_citus_call, is_citus_object_metadata, is_citus_query_runner,
        is_citus_shard_lock,
    };
    use pgrx::prelude::*;

    #[pg_test]
    fn citus_commands_are_recognised_whole() {
        assert!(is_citus_begin(
            "BEGIN TRANSACTION ISOLATION LEVEL READ COMMITTED;SELECT assign_distributed_transaction_id(0, 8, '2026-12-01 14:41:06.777517+00');"
        ));
        assert!(is_citus_begin(
            "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ;SET LOCAL tenancy.citus_context = 'x';SAVEPOINT savepoint_2;SELECT assign_distributed_transaction_id(1, 42, '2026-12-01 14:41:06+00');"
        ));
        assert!(!is_citus_begin(
            "SELECT assign_distributed_transaction_id(0, 8, '2026-12-01 14:41:06+00');"
        ));
        assert!(!is_citus_begin(
            "SELECT assign_distributed_transaction_id(0, 8, now()) FROM tenancy.projects_102080 projects"
        ));
        assert!(is_citus_shard_lock(
            "SELECT lock_shard_resources(3, ARRAY[102008])"
        ));
        assert!(is_citus_shard_lock(
            "SELECT lock_shard_metadata(7, ARRAY[102008, 102009])"
        ));
        assert!(!is_citus_shard_lock(
            "SELECT lock_shard_resources(7, ARRAY[102008]) AS lock_shard_resources FROM tenancy.projects_102080 projects WHERE true"
        ));
        assert!(!is_citus_shard_lock(
            "SELECT lock_shard_resources(7, ARRAY[102008]);SELECT 1"
        ));
        assert_eq!(
            is_citus_call(
                "SELECT worker_create_or_replace_object('CREATE OR REPLACE FUNCTION leaker.peek(text) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN RAISE NOTICE ''peek %'', $1; RETURN true; END $f$')"
            )
            .as_deref(),
            Some("worker_create_or_replace_object")
        );
        assert_eq!(
            is_citus_call(
                "SET citus.enable_ddl_propagation TO 'off'; SELECT worker_apply_shard_ddl_command(102008, 'tenancy', 'ALTER TABLE x ADD COLUMN y int')"
            )
            .as_deref(),
            Some("worker_apply_shard_ddl_command")
        );
        assert!(is_citus_call("SELECT leaker.f('x')").is_none());
        assert!(is_citus_call(
            "SELECT count(*) AS count FROM tenancy.projects_102080 projects WHERE (tenant_id OPERATOR(pg_catalog.=) 'a0000000-0000-4000-8000-000000000001'::uuid) HAVING (worker_apply_shard_ddl_command((0)::bigint, 'x'::text, 'CREATE TEMP TABLE loot (v text)'::text) IS NULL)"
        )
        .is_none());
        assert!(is_citus_object_metadata(
            "WITH distributed_object_data(typetext, objnames, objargs, distargumentindex, colocationid, force_delegation)  AS (VALUES ('function', ARRAY['leaker', 'peek']::text[], ARRAY['pg_catalog.text']::text[], -1, 0, false)) SELECT citus_internal.add_object_metadata(typetext, objnames, objargs, distargumentindex::int, colocationid::int, force_delegation::bool) FROM distributed_object_data;"
        ));
        assert!(!is_citus_object_metadata(
            "WITH distributed_object_data(typetext, objnames, objargs, distargumentindex, colocationid, force_delegation) AS (VALUES ('function'::text, ARRAY['leaker'::text], ARRAY['x'::text], '-1'::integer, 0, false)) SELECT citus_internal.add_object_metadata(typetext, objnames, objargs, (distargumentindex)::integer, (colocationid)::integer, (force_delegation)::boolean) AS add_object_metadata FROM distributed_object_data, tenancy.projects_102080 p"
        ));
        assert!(is_citus_query_runner(
            "SELECT * FROM worker_save_query_explain_analyze('SELECT count(*) AS count FROM tenancy.projects_102080 projects WHERE true', '{\"verbose\": false}') AS (field_0 bigint)"
        ));
        assert!(is_citus_query_runner(
            "WITH unused AS (SELECT $1::uuid) SELECT * FROM worker_save_query_explain_analyze('SELECT 1', '{}') AS (field_0 integer)"
        ));
        assert!(!is_citus_query_runner(
            "SELECT p.id, (SELECT count(*) FROM worker_save_query_explain_analyze('UPDATE tenancy.api_keys_102011 SET name = ''x''::text'::text, '{}'::jsonb) x(plan text)) AS count FROM tenancy.projects_102080 p LIMIT 1"
        ));
        assert!(is_citus_query_runner(
            "SELECT partition_index, 'repartition_1_2' || '_' || partition_index::text , rows_written FROM pg_catalog.worker_partition_query_result('repartition_1_2','SELECT id FROM t_1',0,'hash','{-2147483648}'::text[],'{2147483647}'::text[],true,true,true) WHERE rows_written > 0"
        ));
    }
}
