//! Citus: what the library does differently when the database is distributed
//! (`tenancy.distribute()`, sql/citus.sql; docs/citus.md).
//!
//! On a Citus node a table's name is a shell: the rows live in its shards, `<name>_<shard id>`,
//! which Citus's planner substitutes in the queries it sends.  The library's own primary-key reads
//! ([`crate::lookup`]) open relations directly, without the planner, so on Citus they open this
//! node's copy of a reference table (every node has one: tenants, memberships, API keys and the
//! key material are reference tables), and the cache triggers' invalidations arrive from that copy
//! ([`crate::invalidation`]).  A distributed table has no copy here that holds every tenant:
//! reading it directly is refused (`0A000`) rather than answered from the empty shell.
//!
//! Citus is noticed without linking to it (it exports none of its C functions): preloaded, and
//! its extension installed in the database.  Its metadata is read with SQL.
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::{CStr, CString};

thread_local! {
    /// Is Citus in `shared_preload_libraries` (read once: it cannot change while a backend runs)?
    static PRELOADED: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Where a relation's rows are on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Not a Citus table: the relation itself.
    Local,
    /// A reference table: its copy on this node is shard `.0` (`<name>_<.0>`).
    Reference(u64),
    /// Distributed (or a reference table without a copy here): no single relation here has it.
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
    // SAFETY: a catalog lookup by name, in a transaction.
    preloaded
        && unsafe {
            pg_sys::IsTransactionState()
                && pg_sys::get_extension_oid(c"citus".as_ptr(), true) != pg_sys::InvalidOid
        }
}

/// Where the rows of the relation `relid` are on this node (one query of Citus's metadata; the
/// caller keeps the answer: `lookup`'s relation cache).
pub fn placement(relid: pg_sys::Oid) -> Placement {
    if relid == pg_sys::InvalidOid || !active() {
        return Placement::Local;
    }
    placement_uncached(relid)
}

fn placement_uncached(relid: pg_sys::Oid) -> Placement {
    // partmethod 'n': a reference table; its one shard, with a placement in this node's group.
    let row = Spi::get_two_with_args::<String, i64>(
        "SELECT d.partmethod::text, \
                (SELECT s.shardid FROM pg_catalog.pg_dist_shard s \
                   JOIN pg_catalog.pg_dist_placement p ON p.shardid = s.shardid \
                  WHERE s.logicalrelid = d.logicalrelid \
                    AND p.groupid = (SELECT groupid FROM pg_catalog.pg_dist_local_group) \
                    AND d.partmethod = 'n') \
           FROM pg_catalog.pg_dist_partition d WHERE d.logicalrelid = $1",
        &[relid.into()],
    );
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

/// The OID of this node's copy of `name` (a table or one of its indexes) in the schema `nsp`,
/// for a table whose placement is `placement`.  Raises `0A000` for a distributed table.
pub fn local_relid(nsp: pg_sys::Oid, name: &CStr, placement: Placement) -> pg_sys::Oid {
    match placement {
        Placement::Local => {
            // SAFETY: a syscache lookup with a NUL-terminated name.
            unsafe { pg_sys::get_relname_relid(name.as_ptr(), nsp) }
        }
        Placement::Reference(shard) => {
            let shard_name = CString::new(format!("{}_{shard}", name.to_string_lossy()))
                .expect("a relation name has no NUL");
            // SAFETY: as above.
            unsafe { pg_sys::get_relname_relid(shard_name.as_ptr(), nsp) }
        }
        Placement::Elsewhere => crate::error::raise(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            format!(
                "{} is distributed by Citus: pg_tenancy cannot read it directly on this node",
                name.to_string_lossy()
            ),
            Some("This function does not run on a distributed pg_tenancy yet (docs/citus.md lists what does)."),
        ),
    }
}
