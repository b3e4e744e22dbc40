//! Citus: what the library does differently when the database is distributed
//! (`tenancy.distribute()`, sql/citus.sql; docs/citus.md).
//!
//! On a Citus node a table's name is a shell: the rows live in its shards, `<name>_<shard id>`,
//! which Citus's planner substitutes in the queries it sends.  The library's own primary-key reads
//! ([`crate::lookup`]) open relations directly, without the planner, so on Citus they open this
//! node's copy of a reference table (every node has one: tenants, memberships, API keys and the
//! key material are reference tables), and the cache triggers' invalidations arrive from that copy
//! ([`crate::invalidation`]).  A distributed table has no copy here that holds every tenant: it is
//! read with SQL, which Citus sends to the key's shard (`lookup::fetch_distributed`).
//!
//! Citus is noticed without linking to it (it exports none of its C functions): preloaded, and
//! its extension installed in the database.  Its metadata is read with SQL.
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};

pub mod internals;
pub mod logins;
pub mod reference_writes;
pub mod routing;
use std::ffi::{CStr, CString};

/// A value checked on a worker: the value, the role and coordinator backend it was checked for,
/// and the context it holds if it verified.
type Verified = (Vec<u8>, pg_sys::Oid, i64, Option<std::rc::Rc<[u8]>>);

/// Run `f` with `flag` set, cleared again however `f` ends (an ERROR unwinds through it).
pub(crate) fn while_set<R>(
    flag: &'static std::thread::LocalKey<Cell<bool>>,
    f: impl FnOnce() -> R,
) -> R {
    struct Clear(&'static std::thread::LocalKey<Cell<bool>>);
    impl Drop for Clear {
        fn drop(&mut self) {
            self.0.with(|c| c.set(false));
        }
    }
    flag.with(|c| c.set(true));
    let _clear = Clear(flag);
    f()
}

/// Install the planner hook (`routing`) and what ends with a (sub)transaction: plans with a
/// tenant in them, what a worker received.  From `_PG_init`, at server start; nothing of it acts
/// where Citus is not active.
pub fn init() {
    routing::init();
    reference_writes::init();
    // SAFETY: _PG_init runs once, single-threaded, before any query.
    unsafe {
        pg_sys::RegisterXactCallback(Some(at_transaction_end), std::ptr::null_mut());
        pg_sys::RegisterSubXactCallback(Some(at_subtransaction_end), std::ptr::null_mut());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_transaction_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_ABORT
            | pg_sys::XactEvent::XACT_EVENT_PREPARE
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT
            | pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT
    ) {
        routing::context_changed();
        received_ends(1, false);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn at_subtransaction_end(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    // SAFETY: reads backend-local transaction state: the ending subtransaction's level.
    let level = unsafe { pg_sys::GetCurrentTransactionNestLevel() };
    match event {
        // A rolled-back savepoint restores the context it had.
        pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => {
            routing::context_changed();
            received_ends(level, false);
            issued_context_ends(level, false);
        }
        pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
            received_ends(level, true);
            issued_context_ends(level, true);
        }
        _ => {}
    }
}

/// Most contexts one transaction may have signed at its open levels on Citus (`issue`).
const MAX_ISSUED: u32 = 1000;

thread_local! {
    /// Is Citus in `shared_preload_libraries` (read once: it cannot change while a backend runs)?
    static PRELOADED: Cell<Option<bool>> = const { Cell::new(None) };
    /// Citus's extension was found installed in this database.
    static INSTALLED: Cell<bool> = const { Cell::new(false) };
}

/// Where a relation's rows are on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Not a Citus table: the relation itself.
    Local,
    /// A reference table: its copy on this node is shard `.0` (`<name>_<.0>`).
    Reference(u64),
    /// Distributed (or a reference table without a copy here): read with SQL Citus routes.
    Elsewhere,
}

/// Is Citus loaded in this backend (it must be preloaded) and installed in this database?
pub fn active() -> bool {
    let preloaded = PRELOADED.with(|c| match c.get() {
        Some(p) => p,
        None => {
            // SAFETY: reads a GUC's current value (a string owned by the GUC machinery).
            let p = unsafe {
                let v = pg_sys::GetConfigOption(c"shared_preload_libraries".as_ptr(), true, false);
                !v.is_null()
                    && CStr::from_ptr(v)
                        .to_string_lossy()
                        .split(',')
                        .any(|l| matches!(l.trim().trim_matches('"'), "citus" | "$libdir/citus"))
            };
            c.set(Some(p));
            p
        }
    });
    if !preloaded {
        return false;
    }
    if INSTALLED.with(Cell::get) {
        return true;
    }
    // SAFETY: a catalog lookup by name, in a transaction; not while an extension's script runs
    // (CREATE EXTENSION citus itself: its catalog is not there yet).
    let installed = unsafe {
        pg_sys::IsTransactionState()
            && !pg_sys::creating_extension
            && pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid
    };
    // Kept once true: a backend serves one database, and Citus is not dropped from under a
    // running cluster.
    INSTALLED.with(|c| c.set(installed));
    installed
}

thread_local! {
    /// Placements found, by relation; an entry goes with its relation's relcache invalidation
    /// (Citus invalidates a table's when its metadata changes), all of them with a reset.
    static PLACEMENTS: std::cell::RefCell<std::collections::HashMap<pg_sys::Oid, Placement>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
    static PLACEMENTS_WATCHED: Cell<bool> = const { Cell::new(false) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_placement(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Runs while invalidations are processed: no catalog access, and a borrow may be live.
    PLACEMENTS.with(|p| {
        if let Ok(mut p) = p.try_borrow_mut() {
            if relid == pg_sys::InvalidOid {
                p.clear();
            } else {
                p.remove(&relid);
            }
        }
    });
}

/// Where the rows of the relation `relid` are on this node: one query of Citus's metadata, then
/// kept for this backend (a watched table's list is read again after every write to it).
pub fn placement(relid: pg_sys::Oid) -> Placement {
    if relid == pg_sys::InvalidOid || !active() {
        return Placement::Local;
    }
    if let Some(p) = PLACEMENTS.with(|p| p.borrow().get(&relid).copied()) {
        return p;
    }
    if !PLACEMENTS_WATCHED.with(|w| w.replace(true)) {
        // SAFETY: registers a plain function for the life of the backend.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(forget_placement), pg_sys::Datum::from(0))
        };
    }
    let found = placement_uncached(relid);
    // Read in parallel mode on the statement's snapshot (crate::spi::read_two): not kept.
    // SAFETY: reads backend-local transaction state.
    if unsafe { !pg_sys::IsInParallelMode() } {
        PLACEMENTS.with(|p| {
            if let Ok(mut p) = p.try_borrow_mut() {
                p.insert(relid, found);
            }
        });
    }
    found
}

/// Run `f`, which queries Citus's metadata through SPI as the current role, with `search_path`
/// pinned to `pg_catalog, pg_temp`: the operators and functions of its SQL are PostgreSQL's and
/// Citus's, never an object of the caller's schemas named like them.
pub(crate) fn catalog_query<R>(f: impl FnOnce() -> R) -> R {
    crate::gucs::with_setting(c"search_path", c"pg_catalog, pg_temp", f)
}

fn placement_uncached(relid: pg_sys::Oid) -> Placement {
    // partmethod 'n': a reference table; its one shard, with a placement in this node's group.
    let row = catalog_query(|| {
        crate::spi::read_two::<String, i64>(
            "SELECT d.partmethod::text, \
                (SELECT s.shardid FROM pg_catalog.pg_dist_shard s \
                   JOIN pg_catalog.pg_dist_placement p ON p.shardid = s.shardid \
                  WHERE s.logicalrelid = d.logicalrelid \
                    AND p.groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group) \
                    AND d.partmethod = 'n') \
           FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = $1",
            &[relid.into()],
        )
    });
    match row {
        Ok((None, _)) | Err(pgrx::spi::SpiError::InvalidPosition) => Placement::Local,
        Ok((Some(_), Some(shard))) => Placement::Reference(shard as u64),
        Ok((Some(_), None)) => Placement::Elsewhere,
        Err(e) => crate::error::raise(
            PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            format!("could not read Citus's metadata: {e}"),
            None,
        ),
    }
}

/// The table a row-locking read (`FOR SHARE`, `FOR NO KEY UPDATE`, …) of pg_tenancy's table
/// `schema.table` names.  On Citus, for a reference table, this node's copy (`<table>_<shard>`):
/// every write of a row through this node takes that copy's row lock too, so the read orders
/// writes of the row as on one node; on the table itself Citus would lock the whole shard, for
/// every tenant, until the transaction ends (src/citus/reference_writes.rs).  Elsewhere the table.
pub fn row_lock_target(schema: &str, table: &str) -> String {
    let qualified = format!("{schema}.{table}");
    if !active() {
        return qualified;
    }
    let (schema_c, table_c) = (
        CString::new(schema).expect("no NUL"),
        CString::new(table).expect("no NUL"),
    );
    // SAFETY: syscache lookups by name.
    let nsp = unsafe { pg_sys::get_namespace_oid(schema_c.as_ptr(), true) };
    // SAFETY: as above.
    let relid = unsafe { pg_sys::get_relname_relid(table_c.as_ptr(), nsp) };
    match placement(relid) {
        Placement::Reference(shard)
            if local_relid(nsp, &table_c, Some(shard)) != pg_sys::InvalidOid =>
        {
            format!("{schema}.{table}_{shard}")
        }
        _ => qualified,
    }
}

/// The OID of this node's copy of `name` (a table or one of its indexes) in the schema `nsp`:
/// the relation itself, or `<name>_<shard>` for a reference table's copy.  InvalidOid if absent.
pub fn local_relid(nsp: pg_sys::Oid, name: &CStr, shard: Option<u64>) -> pg_sys::Oid {
    let copy;
    let name = match shard {
        None => name,
        Some(shard) => {
            copy = CString::new(format!("{}_{shard}", name.to_string_lossy()))
                .expect("a relation name has no NUL");
            copy.as_c_str()
        }
    };
    // SAFETY: a syscache lookup with a NUL-terminated name.
    unsafe { pg_sys::get_relname_relid(name.as_ptr(), nsp) }
}

// ------------------------------------------------------------------------------------------------
// The signed context
// ------------------------------------------------------------------------------------------------
//
// Policies run on the workers, in connections Citus opens as the role of the query, where the
// coordinator's `tenancy.context` (a superuser-only setting) never arrives.  What arrives is what
// Citus propagates: a `SET LOCAL` the transaction ran (`citus.propagate_set_commands = 'local'`).
// So every time pg_tenancy sets the context on the coordinator it also runs
//
//     SET LOCAL tenancy.citus_context = 'v1:<root key id>:<context>:<nonce>:<mac>'
//
// where mac = HMAC-SHA256 under a key derived from the root key, over the context, a random
// nonce, the database, the role and the coordinator backend's global pid.  A worker uses the
// value only in a backend Citus opened (application_name `citus_internal gpid=<gpid>`, logged in
// as the role itself), and recomputes the mac with its own database, current role and that gpid:
// a value made for another role, database or coordinator backend does not verify.  Its authority
// (membership, tenant status, API key) is then checked again, like any context, on the worker's
// own copy of the reference tables, at every statement.
//
// Transaction-bound: the value is SET LOCAL, so it ends with the transaction on every node, and
// on the coordinator (every backend that is not Citus's) no SQL `SET` of it is accepted but
// pg_tenancy's own (`refuse_foreign_set`): a value captured in one transaction cannot be set in
// another.  Citus's own distributed transaction number is not in the mac: it is assigned at the
// first distributed statement, after the context is set, and `assign_distributed_transaction_id`
// (which any role may call) would let a caller choose it anyway.

/// The key values are signed with: HMAC-SHA256 of a fixed label under the root key (a PRF, as
/// HKDF-Expand is), so the root key itself signs nothing.
fn context_key(root: &crate::vault::keyring::RootKey) -> zeroize::Zeroizing<[u8; 32]> {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&root.key)
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(b"pg_tenancy citus context key v1");
    zeroize::Zeroizing::new(mac.finalize().into_bytes().into())
}

/// The mac of `context` and `nonce` for `database`, `role` and the coordinator backend `gpid`.
fn context_mac(
    root: &crate::vault::keyring::RootKey,
    context: &[u8],
    nonce: &[u8],
    database: &[u8],
    role: &[u8],
    gpid: i64,
) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let key = context_key(root);
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key.as_slice())
        .expect("HMAC-SHA256 takes a key of any length");
    // Each field with its length: no two different field lists give the same bytes.
    for field in [context, nonce, database, role] {
        mac.update(&(field.len() as u32).to_be_bytes());
        mac.update(field);
    }
    mac.update(&gpid.to_be_bytes());
    mac.finalize().into_bytes().into()
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

/// The current database's and role's names.
fn database_and_role() -> (Vec<u8>, Vec<u8>) {
    // SAFETY: catalog lookups of this backend's database and current user, which exist.
    unsafe {
        let db = pg_sys::get_database_name(pg_sys::MyDatabaseId);
        let role = pg_sys::GetUserNameFromId(pg_sys::GetUserId(), false);
        let out = (
            CStr::from_ptr(db).to_bytes().to_vec(),
            CStr::from_ptr(role).to_bytes().to_vec(),
        );
        pg_sys::pfree(db.cast());
        out
    }
}

thread_local! {
    /// This backend's global pid on the coordinator (Citus's `citus_backend_gpid()`), once asked.
    static GPID: Cell<Option<i64>> = const { Cell::new(None) };
    /// Set while pg_tenancy runs its own `SET LOCAL tenancy.citus_context`.
    static ISSUING: Cell<bool> = const { Cell::new(false) };
    /// The last value verified here, for which role and coordinator backend, and the context it
    /// holds (a policy reads it for every row); forgotten at the end of the transaction.
    static VERIFIED: std::cell::RefCell<Option<Verified>> = const { std::cell::RefCell::new(None) };
    /// What Citus sends a worker connection it opens now: the contexts signed at the open
    /// (sub)transaction levels, each with its level.  Citus keeps a level's `SET LOCAL`s only
    /// while the level is open, released or rolled back alike (`reissue_if_lost`).
    static SENT: RefCell<Vec<(i32, Signed)>> = const { RefCell::new(Vec::new()) };
    /// What the coordinator holds: the context last signed at each open level, as PostgreSQL
    /// keeps a `SET LOCAL` (a released level's passes to its parent, a rolled-back level's is
    /// gone), with the role it was signed for.
    static HELD: RefCell<Vec<(i32, Signed)>> = const { RefCell::new(Vec::new()) };
}

/// A context as signed: its bytes and the role it was signed for.
#[derive(Clone, PartialEq, Eq)]
struct Signed {
    context: Box<[u8]>,
    /// The role signed for: its OID (compared at every statement) and name (in the mac).
    role: pg_sys::Oid,
    role_name: Box<[u8]>,
}

fn own_gpid() -> i64 {
    if let Some(g) = GPID.with(Cell::get) {
        return g;
    }
    let g = crate::spi::read_one::<i64>("SELECT pg_catalog.citus_backend_gpid()", &[])
        .ok()
        .flatten()
        .unwrap_or_else(|| {
            crate::error::raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                "could not read this backend's Citus global pid",
                None,
            )
        });
    GPID.with(|c| c.set(Some(g)));
    g
}

/// On the coordinator: after the context changed to `context` (the bytes of `tenancy.context`),
/// sign it and `SET LOCAL tenancy.citus_context`, which Citus sends to every worker the
/// transaction uses.  Nothing without Citus.
pub fn issue(context: &[u8]) {
    issue_for(context, None);
}

/// `issue`, for the current user; or, with `again`, the context the coordinator holds sent again
/// for that role, which changes what Citus sends but not what the coordinator holds.
fn issue_for(context: &[u8], again: Option<(pg_sys::Oid, Box<[u8]>)>) {
    if !active() || consumer_gpid().is_some() {
        return;
    }
    // Citus sends every SET LOCAL of the open (sub)transactions again to each connection it
    // opens later, so each context change costs every later connection: bounded.
    if SENT.with(|i| i.borrow().len()) >= MAX_ISSUED as usize {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("more than {MAX_ISSUED} tenant context changes in one transaction on Citus"),
            Some("Each change is sent to every worker connection the transaction opens later: use a transaction per context."),
        );
    }
    // ISSUING for the whole of it: the SPI calls below start executors, where
    // `reissue_if_lost` would otherwise find the context not yet sent and issue it again.
    let original = again.is_none();
    while_set(&ISSUING, || {
        let (database, current_role) = database_and_role();
        // SAFETY: this backend's current user.
        let (role, role_name) =
            again.unwrap_or_else(|| (unsafe { pg_sys::GetUserId() }, current_role.into()));
        let value = if context.is_empty() {
            String::new()
        } else {
            let root = crate::vault::keyring().active();
            let mut nonce = [0u8; 16];
            crate::error::random(&mut nonce);
            let mac = context_mac(root, context, &nonce, &database, &role_name, own_gpid());
            use base64::Engine;
            format!(
                "v1:{}:{}:{}:{}",
                root.id,
                b64().encode(context),
                b64().encode(nonce),
                b64().encode(mac)
            )
        };
        // Characters of key ids ([A-Za-z0-9_.-]), base64url and ':' only: nothing to quote.
        let sql = format!("SET LOCAL tenancy.citus_context = '{value}'");
        // Citus sends a SET LOCAL to the workers only under citus.propagate_set_commands =
        // 'local', and then every later one too (a SET LOCAL ROLE would follow the connections
        // Citus opens as a superuser for pg_tenancy's own writes): on for this statement only.
        let previous = propagate_set_commands();
        set_propagate_set_commands(c"local");
        let code = set_local(&sql);
        set_propagate_set_commands(&previous);
        if code < 0 {
            crate::error::raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("could not set tenancy.citus_context (SPI code {code})"),
                None,
            );
        }
        // SAFETY: reads backend-local transaction state.
        let level = unsafe { pg_sys::GetCurrentTransactionNestLevel() };
        let signed = Signed {
            context: context.into(),
            role,
            role_name,
        };
        if original {
            HELD.with(|h| {
                let mut h = h.borrow_mut();
                match h.last_mut() {
                    Some(last) if last.0 == level => last.1 = signed.clone(),
                    _ => h.push((level, signed.clone())),
                }
            });
        }
        SENT.with(|i| i.borrow_mut().push((level, signed)));
    });
}

/// Before each statement on the coordinator (the executor's start, src/context/statements.rs):
/// the context again, when what Citus would send a new worker connection is not it.
///
/// PostgreSQL keeps a `SET LOCAL` made in a savepoint that is released, to the end of the
/// transaction; Citus does not: when a subtransaction ends, committed or not, it goes back to
/// the `SET LOCAL`s it had before it (its `PopSubXact`), and the connections it opens afterwards
/// never receive the context.  Measured on Citus 14.0.1: `pre_request()` in a savepoint,
/// `RELEASE`, then a member's `SELECT count(*)` of its projects read 0 rows and an `INSERT`
/// failed its policy (42501).  So the same context is signed again (for the role the last one
/// was signed for) and `SET LOCAL` at the statement's level.  The price: a context set in a
/// savepoint that was released is signed again before each later statement that runs in a
/// savepoint of its own (psql's `ON_ERROR_ROLLBACK`, JDBC's autosave), since each such savepoint
/// ends and takes it with it.
pub fn reissue_if_lost() {
    // Cheap checks first: this runs at every executor start and run.  Parallel workers inherit
    // the setting but sign nothing (and may not set anything).
    // Nothing signed in this transaction (always so on one node): one thread-local read.
    if ISSUING.with(Cell::get) || HELD.with(|h| h.borrow().is_empty()) {
        return;
    }
    // SAFETY: reads backend-local state.
    if unsafe { pg_sys::IsInParallelMode() } {
        return;
    }
    // SAFETY: the backend's user ids.
    let (current, outer) = unsafe { (pg_sys::GetUserId(), pg_sys::GetOuterUserId()) };
    // What Citus should send now: the context the coordinator holds (none, if its setting no
    // longer is what was signed: `RESET ALL`), for the role whose connections run the statement
    // (the `SET ROLE` role; inside a `SECURITY DEFINER` function, the role it was signed for).
    // A superuser's statements bypass the workers' policies: nothing to send.
    let wanted = HELD.with(|h| {
        let h = h.borrow();
        let (_, held) = h.last()?;
        let context: &[u8] =
            if crate::gucs::with_value(&crate::gucs::CONTEXT, |c| *c == *held.context) {
                &held.context
            } else {
                b""
            };
        let role = if current == outer { current } else { held.role };
        let sent = SENT.with(|i| {
            i.borrow()
                .last()
                .is_some_and(|(_, s)| s.role == role && *s.context == *context)
        });
        (!sent).then(|| (context.to_vec(), role, held.role, held.role_name.clone()))
    });
    let Some((context, role, held_role, held_name)) = wanted else {
        return;
    };
    // SAFETY: PostgreSQL caches superuser status.
    if unsafe { pg_sys::superuser_arg(current) } || !active() || consumer_gpid().is_some() {
        return;
    }
    let name: Box<[u8]> = if role == held_role {
        held_name
    } else {
        // SAFETY: the name of the current user, which exists.
        unsafe { CStr::from_ptr(pg_sys::GetUserNameFromId(role, false)) }
            .to_bytes()
            .into()
    };
    issue_for(&context, Some((role, name)));
}

/// Run `sql` (one `SET LOCAL`) through SPI without assigning a transaction id (pgrx's `Spi::run`
/// marks the transaction as writing, which assigns one: a WAL record at every commit, and a
/// subtransaction id per savepoint that signs).  The SPI return code.
fn set_local(sql: &str) -> i32 {
    let sql = CString::new(sql).expect("no NUL in a signed context's SET");
    // SAFETY: a connection to SPI, one utility statement, and its end; an error propagates as a
    // PostgreSQL error and the (sub)transaction's abort cleans SPI up.
    unsafe {
        let connected = pg_sys::SPI_connect();
        if connected < 0 {
            return connected;
        }
        let code = pg_sys::SPI_execute(sql.as_ptr(), false, 0);
        pg_sys::SPI_finish();
        code
    }
}

/// A subtransaction at `level` ends: Citus forgets the `SET LOCAL`s made in it; the coordinator
/// keeps the last one if it committed.
fn issued_context_ends(level: i32, committed: bool) {
    SENT.with(|i| {
        if let Ok(mut i) = i.try_borrow_mut() {
            i.retain(|(l, _)| *l < level);
        }
    });
    HELD.with(|h| {
        if let Ok(mut h) = h.try_borrow_mut() {
            end_level(&mut h, level, committed);
        }
    });
}

/// A (sub)transaction at `level` ends, for a stack of values set at each level, as PostgreSQL
/// ends a `SET LOCAL`: committed, the level's last value passes to its parent (one value per
/// level is kept: only the last counts, and a loop of released savepoints does not grow it);
/// rolled back, its values are gone.
fn end_level<T>(stack: &mut Vec<(i32, T)>, level: i32, committed: bool) {
    if !committed {
        stack.retain(|(l, _)| *l < level);
        return;
    }
    if stack.last().is_none_or(|(l, _)| *l < level) {
        return;
    }
    let (_, last) = stack.pop().expect("checked above");
    stack.retain(|(l, _)| *l < level - 1);
    stack.push((level - 1, last));
}

fn propagate_set_commands() -> CString {
    // SAFETY: reads a GUC's current value (a string owned by the GUC machinery), copied at once.
    unsafe {
        let v = pg_sys::GetConfigOption(c"citus.propagate_set_commands".as_ptr(), true, false);
        if v.is_null() {
            c"none".into()
        } else {
            CStr::from_ptr(v).into()
        }
    }
}

fn set_propagate_set_commands(value: &CStr) {
    crate::gucs::set(
        c"citus.propagate_set_commands",
        value,
        pg_sys::GucContext::PGC_USERSET,
        pg_sys::GucAction::GUC_ACTION_LOCAL,
    );
}

/// The coordinator backend's global pid when this backend is a connection Citus opened, else
/// `None`: its application name *as the connection sent it* (`citus_internal gpid=<gpid>`, the
/// setting's reset value, which no `SET` or `set_config()` changes), and logged in as the role it
/// runs as, or as a superuser (no client session that switched roles).
pub fn consumer_gpid() -> Option<i64> {
    // What the connection sent at its start first: read once, and a client's own connections
    // (most backends) end here.
    let gpid = startup_gpid()?;
    // Only on a worker: the coordinator is where clients connect, and a login role may name
    // itself anything at connection start.
    if !on_worker() {
        return None;
    }
    // SAFETY: this backend's user ids.
    let switched = unsafe {
        let session = pg_sys::GetSessionUserId();
        session != pg_sys::GetUserId() && !pg_sys::superuser_arg(session)
    };
    if switched {
        return None;
    }
    Some(gpid)
}

/// The coordinator backend's gpid in the application name this connection started with
/// (`citus_internal gpid=<gpid>`: a connection Citus opened), whatever the node.
fn startup_gpid() -> Option<i64> {
    // What the connection sent at its start does not change: read once.
    STARTUP_GPID.with(|g| {
        *g.get_or_init(|| {
            // SAFETY: a GUC's reset value, a NUL-terminated string owned by the GUC machinery.
            let name = unsafe {
                let v = pg_sys::GetConfigOptionResetString(c"application_name".as_ptr());
                if v.is_null() {
                    return None;
                }
                CStr::from_ptr(v).to_bytes()
            };
            let gpid = name.strip_prefix(b"citus_internal gpid=")?;
            std::str::from_utf8(gpid).ok()?.parse::<i64>().ok()
        })
    })
}

thread_local! {
    /// `tenancy._citus_set_login()` is setting an application role's login (src/citus/logins.rs).
    pub(crate) static SETTING_LOGIN: Cell<bool> = const { Cell::new(false) };
}

/// From the utility hook: an `ALTER ROLE` of `anon`, `authenticated` or `service_role` that Citus
/// propagates (a statement nested in its `worker_create_or_alter_role()` or
/// `alter_role_if_exists()`, in a connection Citus opened) to a node where the role has a
/// password keeps the role's `LOGIN` and password.  Citus copies a role as the coordinator has it
/// (`NOLOGIN`, no password) whenever a database of the cluster first references it, a
/// `CREATE EXTENSION pg_tenancy` in another database among others: without this, that locked
/// every database's queries out of the workers until `tenancy.distribute()` ran again.  The
/// logins are `distribute()`'s to set (`_citus_set_login`, which passes).  Returns the statement
/// to run: `pstmt`, or a copy without those options.  No check of the database: the roles'
/// propagation can come before pg_tenancy is installed in it.
///
/// # Safety
/// `pstmt` is a valid PlannedStmt, or NULL.
pub unsafe fn keep_worker_logins(
    pstmt: *mut pg_sys::PlannedStmt,
    context: pg_sys::ProcessUtilityContext::Type,
) -> Option<*mut pg_sys::PlannedStmt> {
    use pgrx::list::PgList;
    // SAFETY: a valid PlannedStmt and its utility statement.
    unsafe {
        if pstmt.is_null() {
            return None;
        }
        let stmt = (*pstmt).utilityStmt;
        if stmt.is_null()
            || (*stmt).type_ != pg_sys::NodeTag::T_AlterRoleStmt
            || context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL
            || SETTING_LOGIN.with(Cell::get)
            || startup_gpid().is_none()
        {
            return None;
        }
        let alter = stmt as *mut pg_sys::AlterRoleStmt;
        let role = pg_sys::get_rolespec_oid((*alter).role, true);
        if role == pg_sys::InvalidOid {
            return None;
        }
        let name = CStr::from_ptr(pg_sys::GetUserNameFromId(role, false));
        if !crate::roles::is_application_role_name(name.to_bytes()) {
            return None;
        }
        let mut detail: *const std::ffi::c_char = std::ptr::null();
        let secret = logins::role_password(name.as_ptr(), &mut detail);
        if secret.is_null() {
            return None;
        }
        pg_sys::pfree(secret.cast());
        let options = PgList::<pg_sys::DefElem>::from_pg((*alter).options);
        if !options.iter_ptr().any(|d| login_option(d)) {
            return None;
        }
        // A copy: the caller may keep its tree.
        let copy: *mut pg_sys::PlannedStmt =
            pg_sys::copyObjectImpl(pstmt as *const std::ffi::c_void).cast();
        let alter = (*copy).utilityStmt as *mut pg_sys::AlterRoleStmt;
        let mut kept = PgList::<pg_sys::DefElem>::new();
        for d in PgList::<pg_sys::DefElem>::from_pg((*alter).options).iter_ptr() {
            if !login_option(d) {
                kept.push(d);
            }
        }
        (*alter).options = kept.into_pg();
        Some(copy)
    }
}

/// Is `d`, an option of `ALTER ROLE`, one that changes the role's login (`PASSWORD`, `LOGIN`)?
///
/// # Safety
/// `d` is a valid DefElem.
unsafe fn login_option(d: *mut pg_sys::DefElem) -> bool {
    // SAFETY: a DefElem's name is a C string.
    let option = unsafe { CStr::from_ptr((*d).defname).to_bytes() };
    option == b"password" || option == b"canlogin"
}

thread_local! {
    /// This node's Citus group, once read: 0 is the coordinator's.
    static GROUP: Cell<Option<i32>> = const { Cell::new(None) };
    /// Reading it now.
    static READING_GROUP: Cell<bool> = const { Cell::new(false) };
    /// The coordinator backend's gpid in the application name this connection started with.
    static STARTUP_GPID: std::cell::OnceCell<Option<i64>> = const { std::cell::OnceCell::new() };
}

/// Is this node a Citus worker (its group is not the coordinator's, 0)?  Read once per backend.
fn on_worker() -> bool {
    if !PRELOADED.with(|p| p.get().unwrap_or(true)) {
        return false;
    }
    if let Some(g) = GROUP.with(Cell::get) {
        return g != 0;
    }
    // SAFETY: reads backend-local transaction state.
    if READING_GROUP.with(Cell::get) || !active() || unsafe { !pg_sys::IsTransactionState() } {
        return false;
    }
    // The query below is planned, and so passes through the planner hook, which asks again.
    let group = while_set(&READING_GROUP, || {
        crate::spi::read_one::<i32>("SELECT groupid FROM pg_catalog.pg_dist_local_group", &[])
            .ok()
            .flatten()
    });
    let Some(group) = group else {
        return false;
    };
    GROUP.with(|g| g.set(Some(group)));
    group != 0
}

thread_local! {
    /// On a worker: the values of `tenancy.citus_context` that Citus sent in this transaction, as
    /// top-level `SET LOCAL` statements, with the (sub)transaction nesting level each was set at.
    /// The setting itself is not read there: a query's expressions run on the worker, and
    /// `set_config()` in one would set it.
    static RECEIVED: std::cell::RefCell<Vec<(i32, Vec<u8>)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// From the utility hook, in a backend Citus opened (others return at once): a top-level
/// `SET LOCAL` (or `RESET`) of
/// `tenancy.citus_context` is what the worker will read, until the (sub)transaction ends.  Any
/// other `SET` of it there (session-level, or from inside a function) is refused.
///
/// # Safety
/// `stmt` is a valid utility statement node, or NULL.
pub unsafe fn receive(stmt: *mut pg_sys::Node, context: pg_sys::ProcessUtilityContext::Type) {
    // SAFETY: a valid utility statement node.
    let set = unsafe {
        if stmt.is_null() || (*stmt).type_ != pg_sys::NodeTag::T_VariableSetStmt {
            return;
        }
        stmt as *mut pg_sys::VariableSetStmt
    };
    // SAFETY: as above.
    let (kind, local, ours) = unsafe {
        let name = (*set).name;
        (
            (*set).kind,
            (*set).is_local,
            !name.is_null()
                && CStr::from_ptr(name)
                    .to_bytes()
                    .eq_ignore_ascii_case(crate::gucs::CITUS_CONTEXT_NAME.to_bytes()),
        )
    };
    if kind == pg_sys::VariableSetKind::VAR_RESET_ALL {
        RECEIVED.with(|r| r.borrow_mut().clear());
        return;
    }
    // Whether this backend is Citus's is asked only now (it may read a catalog: not before every
    // utility statement, such as a SET TRANSACTION that must come before any query).
    if !ours || consumer_gpid().is_none() {
        return;
    }
    if context != pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL
        || !local && kind == pg_sys::VariableSetKind::VAR_SET_VALUE
    {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "tenancy.citus_context is received from the coordinator only",
            None,
        );
    }
    let value = if kind == pg_sys::VariableSetKind::VAR_SET_VALUE {
        // SAFETY: the statement's value, flattened as SET would store it (palloc'd), copied.
        unsafe {
            let v = pg_sys::ExtractSetVariableArgs(set);
            if v.is_null() {
                Vec::new()
            } else {
                CStr::from_ptr(v).to_bytes().to_vec()
            }
        }
    } else {
        Vec::new()
    };
    // SAFETY: reads backend-local transaction state.
    let level = unsafe { pg_sys::GetCurrentTransactionNestLevel() };
    RECEIVED.with(|r| {
        let mut r = r.borrow_mut();
        match r.last_mut() {
            Some(last) if last.0 == level => last.1 = value,
            _ => r.push((level, value)),
        }
    });
}

/// A (sub)transaction ended: what it received ends with it (or, committed, passes to its
/// parent).
pub fn received_ends(level: i32, committed_sub: bool) {
    if level <= 1 {
        VERIFIED.with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                *c = None;
            }
        });
        for stack in [&SENT, &HELD] {
            stack.with(|i| {
                if let Ok(mut i) = i.try_borrow_mut() {
                    i.clear();
                }
            });
        }
    }
    RECEIVED.with(|r| end_level(&mut r.borrow_mut(), level, committed_sub));
}

/// On a worker (a backend Citus opened): the context Citus sent in this transaction when it
/// verifies for this database, role and coordinator backend, else `None`.  `f` gets its bytes.
pub fn with_verified<R>(f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    let gpid = match consumer_gpid() {
        Some(g) if active() => g,
        _ => return f(None),
    };
    // SAFETY: this backend's current user.
    let role = unsafe { pg_sys::GetUserId() };
    // The value received last, verified once per value, role and gpid (a value that does not
    // verify too): a policy reads it for every row, without copying it.
    let context: Option<std::rc::Rc<[u8]>> = RECEIVED.with(|r| {
        let r = r.borrow();
        let value = r
            .last()
            .map(|(_, v)| v.as_slice())
            .filter(|v| !v.is_empty())?;
        VERIFIED.with(|c| {
            let mut c = c.borrow_mut();
            let known = c
                .as_ref()
                .is_some_and(|(v, r, g, _)| v.as_slice() == value && *r == role && *g == gpid);
            if !known {
                *c = Some((
                    value.to_vec(),
                    role,
                    gpid,
                    verify(value, gpid).map(Into::into),
                ));
            }
            c.as_ref().and_then(|(_, _, _, ctx)| ctx.clone())
        })
    });
    f(context.as_deref())
}

/// On a Citus worker, in a backend Citus opened, the context is the coordinator's: refused here
/// (42501), where a query's expressions (`pre_request()` with claims of the caller's choosing)
/// would otherwise set one.
pub fn refuse_local_context() {
    if consumer_gpid().is_some() && active() {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "the tenant context is set on the Citus coordinator, not on a worker",
            Some("Enter the tenant on the coordinator: the workers receive its signed context."),
        );
    }
}

/// Verify a `tenancy.citus_context` value (see the section's header); the context it carries.
fn verify(value: &[u8], gpid: i64) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split(':');
    let (v, id, ctx, nonce, mac) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if v != "v1" || parts.next().is_some() {
        return None;
    }
    let root = crate::vault::keyring().get(id)?;
    let ctx = b64().decode(ctx).ok()?;
    let nonce = b64().decode(nonce).ok()?;
    let mac = b64().decode(mac).ok()?;
    let (database, role) = database_and_role();
    let want = context_mac(root, &ctx, &nonce, &database, &role, gpid);
    use subtle::ConstantTimeEq;
    (mac.len() == 32 && bool::from(want.ct_eq(&mac))).then_some(ctx)
}

/// From the utility hook: a `SET` (or `RESET`) of `tenancy.citus_context` by anyone but
/// pg_tenancy, in a backend that is not Citus's, is refused (42501).  (`RESET ALL` clears it with
/// the rest, which only takes the context away.)
///
/// # Safety
/// `stmt` is a valid utility statement node, or NULL.
pub unsafe fn refuse_foreign_set(stmt: *mut pg_sys::Node) {
    // SAFETY: as documented.
    unsafe {
        refuse_propagated_set(stmt);
        refuse_application_role_defaults(stmt);
    }
    // SAFETY: a valid utility statement node.
    let ours = unsafe {
        if stmt.is_null() || (*stmt).type_ != pg_sys::NodeTag::T_VariableSetStmt {
            return;
        }
        let name = (*(stmt as *mut pg_sys::VariableSetStmt)).name;
        !name.is_null()
            && CStr::from_ptr(name)
                .to_bytes()
                .eq_ignore_ascii_case(crate::gucs::CITUS_CONTEXT_NAME.to_bytes())
    };
    if !ours {
        // A SET of tenancy.context itself (a superuser's): plans with a tenant in them are
        // planned again.
        // SAFETY: as above.
        let context = unsafe {
            let name = (*(stmt as *mut pg_sys::VariableSetStmt)).name;
            name.is_null()
                || CStr::from_ptr(name)
                    .to_bytes()
                    .eq_ignore_ascii_case(crate::gucs::CONTEXT_NAME.to_bytes())
        };
        if context {
            routing::context_changed();
        }
        return;
    }
    if ISSUING.with(Cell::get) || consumer_gpid().is_some() {
        return;
    }
    crate::error::raise(
        PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        "tenancy.citus_context is set by pg_tenancy only",
        Some("Enter a tenant with tenancy.set_tenant(), pre_request() or authenticate(); it signs the context for the workers."),
    )
}

/// Under `citus.propagate_set_commands = 'local'` (which any role may turn on), Citus sends the
/// *whole query string* of a `SET LOCAL`, `RESET` or `SET TRANSACTION` to every worker connection
/// the transaction opens afterwards, whatever its user: with several statements in one string,
/// any SQL, also over the superuser connections of pg_tenancy's own writes.  So on a Citus node,
/// such a statement by a role that is not a superuser is refused (42501); pg_tenancy's own
/// `SET LOCAL` of the signed context passes.
///
/// # Safety
/// `stmt` is a valid utility statement node, or NULL.
unsafe fn refuse_propagated_set(stmt: *mut pg_sys::Node) {
    // SAFETY: a valid node, and this backend's current user.
    let candidate = unsafe {
        !stmt.is_null()
            && (*stmt).type_ == pg_sys::NodeTag::T_VariableSetStmt
            && !pg_sys::superuser()
    };
    if !candidate || ISSUING.with(Cell::get) || !active() {
        return;
    }
    if propagate_set_commands().to_bytes() == b"local" {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "SET and RESET are refused while citus.propagate_set_commands is 'local'",
            Some("Citus would send the statement's whole query string to every later worker connection of the transaction; use set_config(), or SET before turning propagation on."),
        );
    }
}

/// `ALTER ROLE anon|authenticated|service_role SET …`, `ALTER ROLE … PASSWORD …` (which a role
/// may do to itself) or `ALTER ROLE … RENAME` (a CREATEROLE role's) by a role that is not a
/// superuser, on Citus: refused (42501).  On the
/// workers these roles log in as themselves, for every tenant: their defaults would reach every
/// tenant's connections, and Citus propagates the ALTER ROLE to every worker, where (stripped of
/// its password by [`keep_worker_logins`]) it still locks the role's row until the caller's
/// transaction ends, and with it `distribute()` and every database's propagation of the role.
///
/// # Safety
/// `stmt` is a valid utility statement node, or NULL.
unsafe fn refuse_application_role_defaults(stmt: *mut pg_sys::Node) {
    // SAFETY: a valid node, and this backend's current user.
    let target = unsafe {
        if stmt.is_null() {
            return;
        }
        if pg_sys::superuser() {
            warn_kept_worker_login(stmt);
            return;
        }
        let role = match (*stmt).type_ {
            pg_sys::NodeTag::T_AlterRoleSetStmt => (*(stmt as *mut pg_sys::AlterRoleSetStmt)).role,
            pg_sys::NodeTag::T_AlterRoleStmt => (*(stmt as *mut pg_sys::AlterRoleStmt)).role,
            pg_sys::NodeTag::T_RenameStmt => {
                let rename = stmt as *mut pg_sys::RenameStmt;
                if (*rename).renameType != pg_sys::ObjectType::OBJECT_ROLE
                    || (*rename).subname.is_null()
                {
                    return;
                }
                let target = pg_sys::get_role_oid((*rename).subname, true);
                if target == pg_sys::InvalidOid {
                    return;
                }
                return refuse_application_role(target);
            }
            _ => return,
        };
        if role.is_null() {
            return; // ALTER ROLE ALL: superusers only
        }
        pg_sys::get_rolespec_oid(role, true)
    };
    refuse_application_role(target);
}

/// A superuser's `ALTER ROLE anon|authenticated|service_role … LOGIN/NOLOGIN/PASSWORD` on the
/// coordinator: Citus propagates it, and the workers keep the role's login as it was
/// ([`keep_worker_logins`]; every tenant's connections there use it).  Said with a WARNING (a
/// worker's own would stay in its log: Citus does not pass it on).
///
/// # Safety
/// `stmt` is a valid utility statement node.
unsafe fn warn_kept_worker_login(stmt: *mut pg_sys::Node) {
    // SAFETY: a valid node; its options' names are C strings.
    let role = unsafe {
        if (*stmt).type_ != pg_sys::NodeTag::T_AlterRoleStmt {
            return;
        }
        let alter = stmt as *mut pg_sys::AlterRoleStmt;
        let login = pgrx::list::PgList::<pg_sys::DefElem>::from_pg((*alter).options)
            .iter_ptr()
            .any(|d| login_option(d));
        if !login || (*alter).role.is_null() {
            return;
        }
        let role = pg_sys::get_rolespec_oid((*alter).role, true);
        if role == pg_sys::InvalidOid {
            return;
        }
        CStr::from_ptr(pg_sys::GetUserNameFromId(role, false))
            .to_string_lossy()
            .into_owned()
    };
    if !crate::roles::is_application_role_name(role.as_bytes()) || !active() || on_worker() {
        return;
    }
    pgrx::ereport!(
        PgLogLevel::WARNING,
        PgSqlErrorCode::ERRCODE_WARNING,
        format!("the workers keep role {role}'s LOGIN and password: Citus's connections of every tenant log in with them"),
        "To change them there, run the ALTER ROLE on the workers with run_command_on_workers(); tenancy.distribute(reset_worker_logins => true) gives them back."
    );
}

/// Refuse (42501) when `target` is `anon`, `authenticated` or `service_role` and Citus is active
/// (`refuse_application_role_defaults`).
fn refuse_application_role(target: pg_sys::Oid) {
    if target == pg_sys::InvalidOid || !active() {
        return;
    }
    if crate::roles::is_application_role(target) {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            "anon, authenticated and service_role are a superuser's to alter on Citus",
            Some("Every tenant's worker connections log in as these roles."),
        );
    }
}

#[cfg(test)]
mod level_tests {
    use super::end_level;

    #[test]
    fn a_released_level_passes_its_last_value_and_a_rolled_back_one_none() {
        // Level 1 holds a; a savepoint (2) sets b then c; a nested one (3) sets d.
        let mut s = vec![(1, 'a'), (2, 'b'), (2, 'c'), (3, 'd')];
        end_level(&mut s, 3, false);
        assert_eq!(s, [(1, 'a'), (2, 'b'), (2, 'c')], "rolled back: d is gone");
        end_level(&mut s, 2, true);
        assert_eq!(s, [(1, 'c')], "released: its last value is the parent's");
        end_level(&mut s, 2, true);
        assert_eq!(s, [(1, 'c')], "a level that set nothing changes nothing");
        let mut s = vec![(1, 'a'), (2, 'b')];
        end_level(&mut s, 2, false);
        assert_eq!(s, [(1, 'a')]);
        // A loop of released savepoints keeps one value per level.
        let mut s = vec![(1, 'a')];
        for v in ['x', 'y', 'z'] {
            s.push((2, v));
            end_level(&mut s, 2, true);
        }
        assert_eq!(s, [(1, 'z')]);
        end_level(&mut s, 1, false);
        assert!(s.is_empty());
    }
}
