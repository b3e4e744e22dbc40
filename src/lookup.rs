//! Primary-key lookups for the hot paths, without SPI.
//!
//! `tenancy.pre_request()` runs for every PostgREST request and `set_tenant` for every switch; the
//! membership check they make was a one-row SPI query, and SPI (connect, plan-cache revalidation,
//! executor start-up, locks) cost about 32 µs of a 100 µs request here (bench: pre_request).  This
//! module reads the row the way PostgreSQL reads its own catalogs: an index scan on the primary
//! key under the latest snapshot, then the wanted columns from the slot.
//!
//! Nothing here is resolved through `search_path` (relations are looked up by name in schema
//! `tenancy` or `tenancy_private`, operators by OID), so no caller setting can redirect it; it
//! bypasses RLS and table privileges, so its callers decide who may ask (see
//! `context::enter_tenant`).
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
            value: crate::datum::uuid_datum(u),
        }
    }
}

/// A relation of the extension, by schema and name: `tenancy` holds what applications use,
/// `tenancy_private` the internal tables and secret material (sql/schema.sql).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Rel {
    pub schema: &'static CStr,
    pub name: &'static CStr,
}

impl Rel {
    /// `tenancy.<name>`.
    pub const fn public(name: &'static CStr) -> Rel {
        Rel {
            schema: c"tenancy",
            name,
        }
    }

    /// `tenancy_private.<name>`.
    pub const fn private(name: &'static CStr) -> Rel {
        Rel {
            schema: PRIVATE,
            name,
        }
    }

    /// Another relation of the same schema (a table's index).
    const fn sibling(self, name: &'static CStr) -> Rel {
        Rel {
            schema: self.schema,
            name,
        }
    }

    /// The relation's OID, or InvalidOid when it or its schema does not exist.  A schema named
    /// `tenancy_private` that is not the extension's raises (see [`private_schema`]).
    pub fn oid(self) -> pg_sys::Oid {
        self.oid_in(private_schema)
    }

    /// Like [`Rel::oid`], but a schema named `tenancy_private` that is not the extension's counts
    /// as missing, without an error: for watching relations (crate::invalidation), which reads
    /// nothing from them.
    pub fn oid_if_ours(self) -> pg_sys::Oid {
        self.oid_in(|| private_schema_checked(false))
    }

    fn oid_in(self, private: impl FnOnce() -> pg_sys::Oid) -> pg_sys::Oid {
        let nsp = if self.schema == PRIVATE {
            private()
        } else {
            // SAFETY: a syscache lookup with a NUL-terminated name.
            unsafe { pg_sys::get_namespace_oid(self.schema.as_ptr(), true) }
        };
        if nsp == pg_sys::InvalidOid {
            return pg_sys::InvalidOid;
        }
        // SAFETY: a syscache lookup with a NUL-terminated name.
        unsafe { pg_sys::get_relname_relid(self.name.as_ptr(), nsp) }
    }
}

/// The private schema's name.
const PRIVATE: &CStr = c"tenancy_private";

thread_local! {
    /// The OID of the schema `tenancy_private` last found to be the extension's own.
    static PRIVATE_OID: Cell<pg_sys::Oid> = const { Cell::new(pg_sys::InvalidOid) };
}

/// The OID of the schema `tenancy_private` when it is the extension's (a member of pg_tenancy,
/// which only a superuser can make it); InvalidOid when no schema has that name (a database
/// still at 0.2.0 or older: what names it then fails by itself).  A schema of that name that is
/// not the extension's raises `42501`: everything the library does there runs with the
/// extension's privileges, and a role that may create schemas could otherwise put tables of its
/// own there, with triggers, in a database not yet updated.  Checked by every lookup of a private
/// relation and before every statement the extension runs with its own privileges
/// (`crate::superuser`); a syscache lookup when the answer is known.
pub fn private_schema() -> pg_sys::Oid {
    private_schema_checked(true)
}

/// [`private_schema`], raising `42P01` when there is none (a database not yet updated to 0.3.0).
pub fn require_private_schema() -> pg_sys::Oid {
    let nsp = private_schema();
    if nsp == pg_sys::InvalidOid {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            "schema tenancy_private does not exist",
            Some("The database's pg_tenancy is older than its library: ALTER EXTENSION pg_tenancy UPDATE."),
        );
    }
    nsp
}

/// [`private_schema`], or InvalidOid for a schema that is not the extension's when `raise` is
/// false.
fn private_schema_checked(raise: bool) -> pg_sys::Oid {
    // SAFETY: syscache and pg_depend lookups with NUL-terminated names.
    unsafe {
        let nsp = pg_sys::get_namespace_oid(PRIVATE.as_ptr(), true);
        if nsp == pg_sys::InvalidOid || nsp == PRIVATE_OID.with(Cell::get) {
            return nsp;
        }
        let owner = pg_sys::getExtensionOfObject(pg_sys::NamespaceRelationId, nsp);
        let ours = owner != pg_sys::InvalidOid
            && owner == pg_sys::get_extension_oid(c"pg_tenancy".as_ptr(), true);
        if !ours {
            if !raise {
                return pg_sys::InvalidOid;
            }
            crate::error::raise(
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
                "schema tenancy_private is not pg_tenancy's",
                Some("Another role created it.  Drop it; a database still at pg_tenancy 0.2.0 or older needs ALTER EXTENSION pg_tenancy UPDATE, which creates the real one."),
            );
        }
        PRIVATE_OID.with(|o| o.set(nsp));
        nsp
    }
}

/// Relation OIDs looked up by name and kept (the extension has fewer tables and indexes).
const MAX_RELIDS: usize = 64;

thread_local! {
    /// Where the tables and indexes read here are, by name; forgotten at every invalidation (a
    /// DROP/CREATE EXTENSION gives them new OIDs).
    static RELIDS: Cache<(Rel, &'static CStr), Target> = const { Cache::new(MAX_RELIDS) };
}

/// Where a table's rows are read.
#[derive(Clone, Copy)]
enum Target {
    /// This node has them: the table (or on Citus its copy of a reference table) and the index.
    Local(pg_sys::Oid, pg_sys::Oid),
    /// On Citus, a distributed table: another node may hold the tenant's shard.  Read with SQL,
    /// which Citus routes (the shell table and its index, for the index's columns).
    Distributed(pg_sys::Oid, pg_sys::Oid),
}

/// Where `table` and its index `index` are read from on this node (`crate::citus`).
fn target(table: Rel, index: &'static CStr) -> Target {
    RELIDS.with(|c| {
        c.get_or_load((table, index), || {
            let shell = relid_uncached(table);
            let placement = crate::citus::placement(shell);
            if placement == crate::citus::Placement::Elsewhere {
                return Target::Distributed(shell, relid_uncached(table.sibling(index)));
            }
            let (t, i) = local_relids(shell, table, index, placement);
            Target::Local(t, i)
        })
    })
}

/// `table`'s (OID `shell`) and its index's copies on this node.
fn local_relids(
    shell: pg_sys::Oid,
    table: Rel,
    index: &'static CStr,
    placement: crate::citus::Placement,
) -> (pg_sys::Oid, pg_sys::Oid) {
    let shard = match placement {
        crate::citus::Placement::Reference(shard) => Some(shard),
        _ => None,
    };
    // SAFETY: a syscache lookup of a relation that exists.
    let nsp = unsafe { pg_sys::get_rel_namespace(shell) };
    let t = crate::citus::local_relid(nsp, table.name, shard);
    let i = crate::citus::local_relid(nsp, index, shard);
    if t == pg_sys::InvalidOid || i == pg_sys::InvalidOid {
        relid_uncached(table.sibling(index)); // raises for a missing index
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!(
                "this node has no copy of {}.{}",
                table.schema.to_string_lossy(),
                table.name.to_string_lossy()
            ),
            Some("Citus's metadata names a copy on this node that is not here: citus_check_cluster_node_health()."),
        );
    }
    (t, i)
}

/// The OID of this node's copy of `rel` (a table: `crate::citus`), or InvalidOid when it does not
/// exist (for watching it: `crate::invalidation`).
pub fn local_oid_if_ours(rel: Rel) -> pg_sys::Oid {
    let shell = rel.oid_if_ours();
    match crate::citus::placement(shell) {
        crate::citus::Placement::Reference(shard) => {
            // SAFETY: a syscache lookup of a relation that exists.
            let nsp = unsafe { pg_sys::get_rel_namespace(shell) };
            crate::citus::local_relid(nsp, rel.name, Some(shard))
        }
        _ => shell,
    }
}

fn relid_uncached(rel: Rel) -> pg_sys::Oid {
    let oid = rel.oid();
    if oid == pg_sys::InvalidOid {
        crate::error::raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
            format!(
                "relation {}.{} does not exist",
                rel.schema.to_string_lossy(),
                rel.name.to_string_lossy()
            ),
            Some(
                "Is the pg_tenancy extension installed in this database, and updated to the library's version (ALTER EXTENSION pg_tenancy UPDATE)?",
            ),
        );
    }
    oid
}

/// Find the row of `table` whose index `index` (in the table's schema) matches `keys`, and give
/// the named columns (NULL as `None`) to `read`, which must copy what it keeps.  `None` if no row.
pub fn fetch<R>(
    table: Rel,
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
    table: Rel,
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
    table: Rel,
    index: &'static CStr,
    keys: &[Key],
    columns: &[&CStr],
    direction: pg_sys::ScanDirection::Type,
    read: impl FnOnce(&[Option<pg_sys::Datum>]) -> R,
) -> Option<R> {
    let (table_oid, index_oid) = match target(table, index) {
        Target::Local(t, i) => (t, i),
        Target::Distributed(t, i) => {
            return fetch_distributed(t, i, keys, columns, direction, read)
        }
    };
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

/// [`fetch_in`] for a table Citus distributes: the same row, read with one SQL query on the
/// shell table (Citus sends it to the shard of the key's tenant), as the superuser (no RLS, as
/// the index scan), with a new snapshot (this transaction's earlier writes included; during a
/// parallel query the statement's, and nothing read is kept: [`crate::spi::first_row_of`]).  The
/// index's columns name the keys and the order.
fn fetch_distributed<R>(
    table: pg_sys::Oid,
    index: pg_sys::Oid,
    keys: &[Key],
    columns: &[&CStr],
    direction: pg_sys::ScanDirection::Type,
    read: impl FnOnce(&[Option<pg_sys::Datum>]) -> R,
) -> Option<R> {
    let lock = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    // SAFETY: catalog reads of relations that exist (the index opened and closed at once); the
    // names are copied into Rust strings.
    let (relation, index_columns) = unsafe {
        let idx = pg_sys::index_open(index, lock);
        let form = (*idx).rd_index;
        let n = (*form).indnkeyatts as usize;
        let attnums: Vec<i16> = (*form).indkey.values.as_slice(n).to_vec();
        pg_sys::index_close(idx, lock);
        let name = |attnum: i16| {
            let p = pg_sys::get_attname(table, attnum, false);
            let quoted = CStr::from_ptr(pg_sys::quote_identifier(p))
                .to_string_lossy()
                .into_owned();
            (quoted, pg_sys::get_atttype(table, attnum))
        };
        let schema = CStr::from_ptr(pg_sys::quote_identifier(pg_sys::get_namespace_name(
            pg_sys::get_rel_namespace(table),
        )))
        .to_string_lossy()
        .into_owned();
        let rel = CStr::from_ptr(pg_sys::quote_identifier(pg_sys::get_rel_name(table)))
            .to_string_lossy()
            .into_owned();
        (
            format!("{schema}.{rel}"),
            attnums.into_iter().map(name).collect::<Vec<_>>(),
        )
    };
    let wanted: Vec<String> = columns
        .iter()
        .map(|c| {
            // SAFETY: quotes a NUL-terminated name.
            unsafe { CStr::from_ptr(pg_sys::quote_identifier(c.as_ptr())) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut sql = format!("SELECT {} FROM {relation} WHERE ", wanted.join(", "));
    let mut types = Vec::with_capacity(keys.len());
    for (n, k) in keys.iter().enumerate() {
        let (name, ty) = &index_columns[k.column as usize - 1];
        if n > 0 {
            sql.push_str(" AND ");
        }
        sql.push_str(&format!("{name} OPERATOR(pg_catalog.=) ${}", n + 1));
        types.push(*ty);
    }
    let order = if direction == pg_sys::ScanDirection::BackwardScanDirection {
        " DESC"
    } else {
        ""
    };
    let by: Vec<String> = index_columns
        .iter()
        .map(|(name, _)| format!("{name}{order}"))
        .collect();
    sql.push_str(&format!(" ORDER BY {} LIMIT 1", by.join(", ")));
    let sql = std::ffi::CString::new(sql).expect("names are quoted, without NUL");
    let mut values: Vec<pg_sys::Datum> = keys.iter().map(|k| k.value).collect();
    let nulls = vec![b' ' as std::ffi::c_char; keys.len()];
    crate::superuser::as_superuser(|| {
        // `read` copies what it keeps before SPI frees the row.
        let row = crate::spi::first_row_of(&sql, &mut types, &mut values, &nulls, |row| {
            let values: Vec<Option<pg_sys::Datum>> =
                (1..=columns.len() as i32).map(|i| row.datum(i)).collect();
            Ok(read(&values))
        });
        match row {
            Ok(r) => Some(r),
            Err(pgrx::spi::SpiError::InvalidPosition) => None,
            Err(e) => crate::error::raise(
                PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
                format!("a read of {relation} failed ({e})"),
                None,
            ),
        }
    })
}
