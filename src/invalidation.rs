//! How per-backend caches learn that the rows they copied have changed.
//!
//! Every table whose rows a backend caches carries the triggers `tenancy.invalidate_caches()`
//! (sql/caches.sql: for each row written, and for TRUNCATE).  The trigger registers a relcache
//! invalidation of its table, which PostgreSQL delivers to every backend when the writing
//! transaction commits, replays locally at the writer's next command, and replays on
//! (sub)transaction abort too: no backend keeps what came from rolled-back or superseded rows.
//! A sinval queue overflow resets every relcache, which also counts.
//!
//! One relcache callback per backend bumps the generation counter of each [`Watch`] whose tables
//! were invalidated (or all of them, for an invalidation of every relation); a cache empties itself
//! when it sees a new generation of its watch.  Invalidations of other relations (any role's
//! temporary tables, ANALYZE, autovacuum) leave the caches alone.
//!
//! One case sends no invalidation at all: rows written by a statement that fails before its
//! AFTER ROW triggers run (a volatile function called by `INSERT … SELECT` sees the rows written
//! so far, and may read them into a cache under the latest snapshot).  PostgreSQL replays at
//! abort only the invalidations of the commands before.  So the abort of a (sub)transaction that
//! wrote anything (it has a transaction id) bumps every watch's generation too, and
//! [`local_aborts`] counts those aborts for what is kept for a statement's life.
//!
//! Two watches, so that a write to one kind of row does not empty the other kind's caches:
//!
//! * [`Watch::Authority`]: tenants, memberships, data keys, root keys, peppers, API keys
//!   (memberships, the vault's keys, API keys' states: `lookup::Cache`).  These caches read with
//!   the latest snapshot and bypass RLS, so only the rows matter.
//! * [`Watch::Actions`]: actions and field mappings (the action's mapping lists of
//!   `actions::mappings`).  That cache holds what a query *as the caller* returned, under RLS:
//!   besides the rows, anything that changes what a role may read counts too, and PostgreSQL
//!   announces those as syscache invalidations: roles (`ALTER ROLE … BYPASSRLS`), role
//!   memberships (`GRANT authenticated TO …`), functions (the policies call some;
//!   `REVOKE EXECUTE`) and schemas (`REVOKE USAGE`).  Policies, table grants and `ALTER TABLE …
//!   ROW LEVEL SECURITY` are relcache invalidations of the table itself.
use crate::lookup::Rel;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

/// A set of tables whose rows some caches hold (sql/caches.sql gives each the triggers).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Watch {
    Authority = 0,
    Actions = 1,
}

const WATCHES: [Watch; 2] = [Watch::Authority, Watch::Actions];

/// The most tables one watch has.
const MAX_TABLES: usize = 7;

impl Watch {
    fn tables(self) -> &'static [Rel] {
        const AUTHORITY: [Rel; 7] = [
            Rel::public(c"tenants"),
            Rel::public(c"memberships"),
            Rel::private(c"data_keys"),
            Rel::private(c"root_keys"),
            Rel::private(c"peppers"),
            Rel::public(c"api_keys"),
            Rel::private(c"api_key_hashes"),
        ];
        const ACTIONS: [Rel; 2] = [Rel::public(c"actions"), Rel::public(c"field_mappings")];
        match self {
            Watch::Authority => &AUTHORITY,
            Watch::Actions => &ACTIONS,
        }
    }

    /// The syscaches whose invalidations also count (see the module's header).
    fn syscaches(self) -> &'static [pg_sys::SysCacheIdentifier::Type] {
        match self {
            Watch::Authority => &[],
            Watch::Actions => &[
                pg_sys::SysCacheIdentifier::AUTHOID,
                pg_sys::SysCacheIdentifier::AUTHMEMMEMROLE,
                pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM,
                pg_sys::SysCacheIdentifier::PROCOID,
                pg_sys::SysCacheIdentifier::NAMESPACEOID,
            ],
        }
    }
}

/// What a backend knows of one watch.
struct State {
    generation: Cell<u64>,
    /// The OIDs of the watch's tables; `None` until they are looked up, and again after any of
    /// them is invalidated (it may have been dropped, and the extension created again): while
    /// `None`, every relcache invalidation counts.
    tables: Cell<Option<[pg_sys::Oid; MAX_TABLES]>>,
}

impl State {
    const fn new() -> State {
        State {
            generation: Cell::new(0),
            tables: Cell::new(None),
        }
    }

    fn bump(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
        self.tables.set(None);
    }
}

thread_local! {
    static STATES: [State; 2] = const { [State::new(), State::new()] };
    static CALLBACKS_REGISTERED: Cell<bool> = const { Cell::new(false) };
    /// Aborts of (sub)transactions that wrote, in this backend.
    static LOCAL_ABORTS: Cell<u64> = const { Cell::new(0) };
}

/// A (sub)transaction that wrote is aborting (or being prepared, which locally counts as an
/// abort: its changes are not visible until COMMIT PREPARED): what the caches read of its rows
/// is gone, and not every such row sent an invalidation (see the module's header).
fn written_rows_gone() {
    STATES.with(|states| states.iter().for_each(State::bump));
    LOCAL_ABORTS.with(|a| a.set(a.get().wrapping_add(1)));
}

#[pg_guard]
unsafe extern "C-unwind" fn on_transaction_event(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    if matches!(
        event,
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PREPARE
    ) {
        // SAFETY: reads backend-local transaction state, still set during these events.
        if unsafe { pg_sys::GetTopTransactionIdIfAny() } != pg_sys::InvalidTransactionId {
            written_rows_gone();
        }
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event != pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        return;
    }
    // SAFETY: reads backend-local transaction state: the aborting subtransaction's id, if it
    // has one (it wrote).
    let xid = unsafe { pg_sys::GetCurrentTransactionIdIfAny() };
    if xid != pg_sys::InvalidTransactionId {
        written_rows_gone();
    }
}

/// How many (sub)transactions that wrote have aborted in this backend: what is kept for a
/// statement's life (and so ignores other sessions' commits, as a statement's snapshot does)
/// is dropped when this changes.
pub fn local_aborts() -> u64 {
    generation(Watch::Actions); // registers the callbacks
    LOCAL_ABORTS.with(Cell::get)
}

#[pg_guard]
unsafe extern "C-unwind" fn on_relcache_invalidation(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    // Runs while invalidations are processed: no catalog access here.
    STATES.with(|states| {
        for state in states {
            let ours = relid == pg_sys::InvalidOid
                || state
                    .tables
                    .get()
                    .is_none_or(|tables| tables.contains(&relid));
            if ours {
                state.bump();
            }
        }
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn on_syscache_invalidation(
    arg: pg_sys::Datum,
    _cacheid: std::ffi::c_int,
    _hashvalue: u32,
) {
    // `arg` is the watch's index in STATES.
    STATES.with(|states| {
        if let Some(state) = states.get(arg.value()) {
            state.bump();
        }
    });
}

/// The OIDs of `watch`'s tables (unused places hold InvalidOid), or `None` if the extension's
/// schema or one of them is missing.
fn table_oids(watch: Watch) -> Option<[pg_sys::Oid; MAX_TABLES]> {
    let mut oids = [pg_sys::InvalidOid; MAX_TABLES];
    for (oid, rel) in oids.iter_mut().zip(watch.tables()) {
        // On Citus, the node's copy of a reference table: its triggers invalidate that relation.
        *oid = crate::lookup::local_oid_if_ours(*rel);
        if *oid == pg_sys::InvalidOid {
            return None;
        }
    }
    Some(oids)
}

/// The current generation of `watch`: it changes whenever what the watch's caches copied may
/// have changed.  Registers the callbacks on first use, and learns which tables to watch when
/// that is not known.
pub fn generation(watch: Watch) -> u64 {
    if !CALLBACKS_REGISTERED.with(|r| r.replace(true)) {
        // SAFETY: registers plain functions for the life of the backend (a few of PostgreSQL's
        // fixed number of callback slots).
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(
                Some(on_relcache_invalidation),
                pg_sys::Datum::from(0),
            );
            pg_sys::RegisterXactCallback(Some(on_transaction_event), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subtransaction_event), std::ptr::null_mut());
            for w in WATCHES {
                for cache in w.syscaches() {
                    pg_sys::CacheRegisterSyscacheCallback(
                        *cache as std::ffi::c_int,
                        Some(on_syscache_invalidation),
                        pg_sys::Datum::from(w as usize),
                    );
                }
            }
        }
    }
    STATES.with(|states| {
        let state = &states[watch as usize];
        if state.tables.get().is_none() {
            // Kept only if no invalidation arrived during the lookup (which may have found a
            // table that was being dropped): else looked up again next time.  Nor, on Citus,
            // during a parallel query: which copy of a table to watch is read there on the
            // statement's snapshot (crate::spi::read_two), which may predate an invalidation
            // already processed.
            let before = state.generation.get();
            let tables = table_oids(watch);
            // SAFETY: reads backend-local transaction state.
            let parallel = unsafe { pg_sys::IsInParallelMode() };
            if state.generation.get() == before && !(parallel && crate::citus::active()) {
                state.tables.set(tables);
            }
        }
        state.generation.get()
    })
}

/// Statement trigger on the tables whose rows backends cache: registers a relcache invalidation
/// of the table (see the module's header).
#[no_mangle]
pub extern "C" fn pg_finfo_invalidate_caches() -> &'static pg_sys::Pg_finfo_record {
    static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// # Safety
/// Called by the function manager as a trigger.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn invalidate_caches(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
            "tenancy.invalidate_caches() must be called as a trigger",
            None,
        );
    }
    let trigdata = context as *mut pg_sys::TriggerData;
    pg_sys::CacheInvalidateRelcache((*trigdata).tg_relation);
    pg_sys::Datum::from(0)
}
