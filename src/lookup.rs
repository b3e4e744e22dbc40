//! Primary-key lookups for the hot paths, without SPI.
//!
//! `tenancy.pre_request()` runs for every PostgREST request and `set_tenant` for every switch; the
//! membership check they make was a one-row SPI query, and SPI (connect, plan-cache revalidation,
//! executor start-up, locks) cost about 32 µs of a 100 µs request here (bench: pre_request).  This
//! module reads the row the way PostgreSQL reads its own catalogs: an index scan on the primary
//! key under the latest snapshot, then the wanted columns from the slot.
//!
//! Nothing here is resolved through `search_path` (relations are looked up in schema `tenancy`
//! by name, operators by OID), so no caller setting can redirect it; it bypasses RLS and table
//! privileges, so its callers decide who may ask (see `context::enter_tenant`).
use crate::invalidation::Watch;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::CStr;
use std::hash::Hash;

/// An index key: the index column (1-based), the equality function's OID, and the value.
pub struct Key {
    pub column: i16,
    pub eq_proc: u32,
    pub value: pg_sys::Datum,
}

impl Key {
    /// `column = u` for a uuid column (the datum points into `u`, which must outlive the scan).
    pub fn uuid(column: i16, u: &pgrx::Uuid) -> Key {
        Key {
            column,
            eq_proc: pg_sys::F_UUID_EQ,
            value: uuid_datum(u),
        }
    }
}

thread_local! {
    /// OIDs of the relations looked up here, by name; forgotten at every invalidation (a
    /// DROP/CREATE EXTENSION gives them new OIDs).
    static RELIDS: Cache<&'static CStr, pg_sys::Oid> = const { Cache::new(64) };
}

fn relid(name: &'static CStr) -> pg_sys::Oid {
    RELIDS.with(|c| c.get_or_load(name, || relid_uncached(name)))
}

fn relid_uncached(name: &CStr) -> pg_sys::Oid {
    // SAFETY: syscache lookups with NUL-terminated names.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"tenancy".as_ptr(), false);
        let oid = pg_sys::get_relname_relid(name.as_ptr(), nsp);
        if oid == pg_sys::InvalidOid {
            crate::error::raise(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                format!("relation tenancy.{} does not exist", name.to_string_lossy()),
                Some("Is the pg_tenancy extension installed in this database?"),
            );
        }
        oid
    }
}

/// Find the row of `tenancy.<table>` whose index `tenancy.<index>` matches `keys`, and give the
/// named columns (NULL as `None`) to `read`, which must copy what it keeps.  `None` if no row.
pub fn fetch<R>(
    table: &'static CStr,
    index: &'static CStr,
    keys: &[Key],
    columns: &[&CStr],
    read: impl FnOnce(&[Option<pg_sys::Datum>]) -> R,
) -> Option<R> {
    fetch_in(
        table,
        index,
        keys,
        columns,
        pg_sys::ScanDirection::ForwardScanDirection,
        read,
    )
}

/// Like [`fetch`], but the last match in index order (keys naming a prefix of the index: the
/// row with the highest value of the next column).
pub fn fetch_last<R>(
    table: &'static CStr,
    index: &'static CStr,
    keys: &[Key],
    columns: &[&CStr],
    read: impl FnOnce(&[Option<pg_sys::Datum>]) -> R,
) -> Option<R> {
    fetch_in(
        table,
        index,
        keys,
        columns,
        pg_sys::ScanDirection::BackwardScanDirection,
        read,
    )
}

fn fetch_in<R>(
    table: &'static CStr,
    index: &'static CStr,
    keys: &[Key],
    columns: &[&CStr],
    direction: pg_sys::ScanDirection::Type,
    read: impl FnOnce(&[Option<pg_sys::Datum>]) -> R,
) -> Option<R> {
    let table_oid = relid(table);
    let index_oid = relid(index);
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    // SAFETY: the same sequence as systable_beginscan/systable_getnext; every resource is released
    // below, or by transaction abort if an ERROR escapes.
    unsafe {
        let rel = pg_sys::table_open(table_oid, lock);
        let idx = pg_sys::index_open(index_oid, lock);
        // The latest snapshot: everything committed, and this transaction's earlier commands (such
        // as a data key the vault inserted a moment ago).  Registered for the scan's duration.
        // During a parallel query (a reader evaluated in a Gather plan's leader, or in a worker)
        // no new snapshot may be taken: the statement's own is used, and what it finds is not
        // kept in a cache (see Cache::get_or_load).
        let snapshot = pg_sys::RegisterSnapshot(if pg_sys::IsInParallelMode() {
            pg_sys::GetActiveSnapshot()
        } else {
            pg_sys::GetLatestSnapshot()
        });
        let mut scankeys: Vec<pg_sys::ScanKeyData> = Vec::with_capacity(keys.len());
        for k in keys {
            let mut sk = std::mem::zeroed::<pg_sys::ScanKeyData>();
            pg_sys::ScanKeyInit(
                &mut sk,
                k.column,
                pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber,
                pg_sys::Oid::from(k.eq_proc),
                k.value,
            );
            scankeys.push(sk);
        }
        #[cfg(not(feature = "pg18"))]
        let scan = pg_sys::index_beginscan(rel, idx, snapshot, keys.len() as i32, 0);
        #[cfg(feature = "pg18")]
        let scan = pg_sys::index_beginscan(
            rel,
            idx,
            snapshot,
            std::ptr::null_mut(),
            keys.len() as i32,
            0,
        );
        pg_sys::index_rescan(
            scan,
            scankeys.as_mut_ptr(),
            keys.len() as i32,
            std::ptr::null_mut(),
            0,
        );
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let result = if pg_sys::index_getnext_slot(scan, direction, slot) {
            let desc = (*rel).rd_att;
            let values: Vec<Option<pg_sys::Datum>> = columns
                .iter()
                .map(|name| {
                    let attnum = pg_sys::SPI_fnumber(desc, name.as_ptr());
                    let mut is_null = false;
                    let d = pg_sys::slot_getattr(slot, attnum as i32, &mut is_null);
                    (!is_null).then_some(d)
                })
                .collect();
            Some(read(&values))
        } else {
            None
        };
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::index_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::index_close(idx, lock);
        pg_sys::table_close(rel, lock);
        result
    }
}

/// The key of the advisory lock tags: random, made once in the postmaster at server start
/// (`shared_preload_libraries`) and inherited by every backend it forks, so all of them tag a
/// lock alike; all zeros when the library is not preloaded (then each backend would otherwise
/// have a key of its own, and two backends would not exclude each other).
static LOCK_TAG_KEY: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();

/// Make the key of the advisory lock tags.  From `_PG_init`, when preloaded.
pub fn init_lock_tags() {
    let mut key = [0u8; 32];
    crate::error::random(&mut key);
    let _ = LOCK_TAG_KEY.set(key);
}

/// Take a transaction-level advisory lock on `id` in pg_tenancy's lock class `class` (shown in
/// `pg_locks` as `locktype = 'advisory'`, `objsubid = class`, with a hash of `id`; SQL-level
/// advisory locks use 1 and 2, so they can never collide).  Exclusive or share; waits if `wait`, else returns whether it got
/// the lock.
pub fn advisory_xact_lock(class: u16, id: &pgrx::Uuid, exclusive: bool, wait: bool) -> bool {
    // pg_locks is readable by every role: the tag is a keyed hash of the id, not the id, so that
    // it does not tell other tenants whose keys, members or API keys are being handled, nor let
    // one who knows a tenant's id recognise it.
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(b"pg_tenancy advisory lock\0")
        .chain_update(LOCK_TAG_KEY.get().copied().unwrap_or_default())
        .chain_update(class.to_be_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    let b = &digest[..8];
    let mode = if exclusive {
        pg_sys::ExclusiveLock
    } else {
        pg_sys::ShareLock
    };
    // SAFETY: a well-formed advisory LOCKTAG in the current database; released at transaction end.
    unsafe {
        let tag = pg_sys::LOCKTAG {
            locktag_field1: pg_sys::MyDatabaseId.to_u32(),
            locktag_field2: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            locktag_field3: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            locktag_field4: class,
            locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
            locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
        };
        pg_sys::LockAcquire(&tag, mode as pg_sys::LOCKMODE, false, !wait)
            != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
    }
}

/// A statement planned once per backend and kept (the plan cache replans it when the role or the
/// tables change), run through SPI.  For the hot writes (store_credential, log_request), which
/// run it inside [`as_extension`] after their own checks: the foreign keys still decide what rows
/// may reference; and for hot reads made as the caller (field mappings: RLS applies).  Every name
/// in `sql` must be schema-qualified.
pub struct KeptStatement {
    sql: &'static str,
    types: &'static [pg_sys::Oid],
    mutating: bool,
    plan: std::cell::OnceCell<pgrx::spi::OwnedPreparedStatement>,
}

impl KeptStatement {
    /// A statement that writes.
    pub const fn new(sql: &'static str, types: &'static [pg_sys::Oid]) -> KeptStatement {
        KeptStatement {
            sql,
            types,
            mutating: true,
            plan: std::cell::OnceCell::new(),
        }
    }

    /// A query that only reads (run read-only: it sees the calling statement's snapshot).
    pub const fn reading(sql: &'static str, types: &'static [pg_sys::Oid]) -> KeptStatement {
        KeptStatement {
            sql,
            types,
            mutating: false,
            plan: std::cell::OnceCell::new(),
        }
    }

    fn plan(
        &self,
        client: &pgrx::spi::SpiClient<'_>,
    ) -> pgrx::spi::SpiResult<&pgrx::spi::OwnedPreparedStatement> {
        if self.plan.get().is_none() {
            let types: Vec<PgOid> = self.types.iter().map(|t| PgOid::from(*t)).collect();
            let stmt = if self.mutating {
                client.prepare_mut(self.sql, &types)?
            } else {
                client.prepare(self.sql, &types)?
            };
            let _ = self.plan.set(stmt.keep());
        }
        Ok(self.plan.get().expect("set just above"))
    }

    /// Run it with `args`; `what` names it in an error.
    pub fn execute(&self, args: &[pgrx::datum::DatumWithOid], what: &str) {
        Spi::connect_mut(|client| {
            let stmt = self.plan(client)?;
            client.update(stmt, None, args).map(|_| ())
        })
        .unwrap_or_else(|e| crate::error::spi_failed(what, e))
    }

    /// Run a reading query with `args` and hand its rows to `rows` (inside the SPI connection:
    /// copy what outlives it); `what` names it in an error.
    pub fn select<R>(
        &self,
        args: &[pgrx::datum::DatumWithOid],
        what: &str,
        rows: impl FnOnce(pgrx::spi::SpiTupleTable<'_>) -> pgrx::spi::SpiResult<R>,
    ) -> R {
        Spi::connect(|client| {
            let stmt = self.plan(client)?;
            rows(client.select(stmt, None, args)?)
        })
        .unwrap_or_else(|e| crate::error::spi_failed(what, e))
    }
}

/// A uuid as an index-scan argument (a pointer to its 16 bytes, valid while `u` lives).
pub fn uuid_datum(u: &pgrx::Uuid) -> pg_sys::Datum {
    pg_sys::Datum::from(u.as_bytes().as_ptr())
}

/// A timestamptz datum as jsonb writes it (`to_jsonb(ts)`), without the quotes.
pub fn timestamptz_json(d: pg_sys::Datum) -> String {
    // SAFETY: JsonEncodeDateTime pallocs a NUL-terminated string for a timestamptz datum.
    unsafe {
        let s = pg_sys::JsonEncodeDateTime(
            std::ptr::null_mut(),
            d,
            pg_sys::TIMESTAMPTZOID,
            std::ptr::null(),
        );
        let out = CStr::from_ptr(s).to_string_lossy().into_owned();
        pg_sys::pfree(s.cast());
        out
    }
}

/// The label of an enum value.
pub fn enum_label(d: pg_sys::Datum) -> String {
    pgrx::enum_helper::lookup_enum_by_oid(pg_sys::Oid::from(d.value() as u32)).0
}

/// Run `f` as the bootstrap superuser with `search_path = pg_catalog, pg_temp`, inside a
/// security-restricted operation: what `SECURITY DEFINER ... SET search_path` does for a SQL
/// function.  For the few internal writes to tables no application role may touch (the vault's
/// keys); the caller has already decided the caller may cause them.  Every name in the SQL `f`
/// runs is schema-qualified and every operator is `OPERATOR(pg_catalog.=)`.  On error,
/// transaction abort restores the user and the settings.
pub fn as_superuser<R>(f: impl FnOnce() -> R) -> R {
    internally(|| as_superuser_inner(f))
}

thread_local! {
    /// How deep we are in the extension's own SQL ([`as_superuser`], [`as_extension`]).
    static INTERNAL: Cell<u32> = const { Cell::new(0) };
}

/// Is the extension running its own SQL (as the superuser, names qualified, no policy, no context
/// reader)?  Executors started there are not tracked (crate::context::statements).
pub fn internal() -> bool {
    INTERNAL.with(|d| d.get() > 0)
}

/// Back to 0 at the end of every top-level transaction (a safety net: see [`internally`]).
pub fn reset_internal() {
    INTERNAL.with(|d| d.set(0));
}

/// Leaves the depth as it found it, also when an ERROR unwinds through (pgrx turns it into a
/// Rust panic that runs destructors): a caught error, in a savepoint, must not leave the
/// extension believing it still runs its own SQL, which would stop executor tracking.
struct Internal;

impl Drop for Internal {
    fn drop(&mut self) {
        INTERNAL.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

fn internally<R>(f: impl FnOnce() -> R) -> R {
    INTERNAL.with(|d| d.set(d.get() + 1));
    let _internal = Internal;
    f()
}

fn as_superuser_inner<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: the same calls fmgr_security_definer makes, in the same order: a GUC nest level
    // for the search_path, the user switch, both undone after (or by abort).
    unsafe {
        let nest_level = pg_sys::NewGUCNestLevel();
        crate::gucs::set(
            c"search_path",
            c"pg_catalog, pg_temp",
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucAction::GUC_ACTION_SAVE,
        );
        let result = as_bootstrap_superuser(f);
        pg_sys::AtEOXact_GUC(true, nest_level);
        result
    }
}

/// `f` as the bootstrap superuser in a security-restricted operation (fmgr_security_definer's
/// user switch); the caller's user and context come back after, or at abort on error.
fn as_bootstrap_superuser<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: GetUserIdAndSecContext/SetUserIdAndSecContext as fmgr_security_definer calls them.
    unsafe {
        let mut saved_user = pg_sys::InvalidOid;
        let mut saved_context = 0;
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            saved_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
        let result = f();
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
        result
    }
}

/// Run `f` as the bootstrap superuser inside a security-restricted operation, without touching
/// `search_path`: for a [`KeptStatement`] whose SQL names everything with its schema and takes
/// only parameters (no function or operator is resolved when it runs; defaults, checks and the
/// foreign keys' queries are stored resolved).  What `as_superuser` costs in GUC work (a nest
/// level and a setting, about 2 µs) is not on the hot writes (`log_request`, `store_credential`).
/// On error, transaction abort restores the user.
pub fn as_extension<R>(f: impl FnOnce() -> R) -> R {
    internally(|| as_bootstrap_superuser(f))
}

/// A bytea column's bytes (detoasted, copied).
pub fn bytea(d: pg_sys::Datum) -> Vec<u8> {
    // SAFETY: `d` is a bytea datum from a slot; pg_detoast_datum_packed gives a readable varlena.
    unsafe {
        let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        pgrx::varlena::varlena_to_byte_slice(v).to_vec()
    }
}

/// A text column's value (detoasted, copied).
pub fn text(d: pg_sys::Datum) -> String {
    // SAFETY: as above, for text.
    unsafe {
        let v = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        String::from_utf8_lossy(pgrx::varlena::varlena_to_byte_slice(v)).into_owned()
    }
}

/// The generation of the caches of this module's rows ([`Watch::Authority`]).
pub fn generation() -> u64 {
    crate::invalidation::generation(Watch::Authority)
}

/// A bounded per-backend map that forgets everything at every invalidation of the tables
/// [`Watch::Authority`] names (see [`crate::invalidation`]).
pub struct Cache<K, V> {
    entries: RefCell<Option<HashMap<K, V>>>,
    seen: Cell<u64>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub const fn new(capacity: usize) -> Self {
        Cache {
            entries: RefCell::new(None),
            seen: Cell::new(0),
            capacity,
        }
    }

    fn sync(&self, generation: u64) {
        if self.seen.replace(generation) != generation {
            *self.entries.borrow_mut() = None;
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.sync(generation());
        self.entries
            .borrow()
            .as_ref()
            .and_then(|m| m.get(key).cloned())
    }

    /// Look `key` up, or compute it with `load` (which may read tables, and so process
    /// invalidations) and keep the answer unless an invalidation arrived meanwhile.
    pub fn get_or_load(&self, key: K, load: impl FnOnce() -> V) -> V {
        if let Some(hit) = self.get(&key) {
            return hit;
        }
        let before = generation();
        let value = load();
        let after = generation();
        // SAFETY: reads backend-local state.  A value loaded in parallel mode came from the
        // statement's snapshot, which may predate an invalidation already read: not kept.
        let parallel = unsafe { pg_sys::IsInParallelMode() };
        if after == before && !parallel {
            self.sync(after);
            let mut entries = self.entries.borrow_mut();
            let map = entries.get_or_insert_with(HashMap::new);
            if map.len() >= self.capacity {
                map.clear();
            }
            map.insert(key, value.clone());
        }
        value
    }

    pub fn insert(&self, key: K, value: V) {
        self.sync(generation());
        let mut entries = self.entries.borrow_mut();
        let map = entries.get_or_insert_with(HashMap::new);
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, value);
    }
}
