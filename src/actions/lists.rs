//! An action's field mappings of one direction, as the caller reads them, kept per backend.
//!
//! `apply_field_mappings` needs the list on every call.  Reading it is one SPI query as the
//! caller (RLS applies), and that query cost more than applying twenty mappings to a 1 kB
//! payload (executor start-up, the policy's InitPlan, the rows; bench `actions`).  So the sorted
//! list of compiled mappings is kept, keyed by everything the query's answer depends on:
//!
//! * the action and the direction;
//! * the context (`tenancy.context`'s bytes: tenant, user, role, API key, scopes: what the
//!   policies read), used only while it is valid ([`crate::context::tenant_context`]), and
//!   noted against the calling statement as any context reader's read is;
//! * the current user (whose policies apply; `SET ROLE`, `SECURITY DEFINER`) and `row_security`.
//!
//! And it is forgotten when anything else it depends on may have changed
//! ([`crate::invalidation::Watch::Actions`]): a write to `actions` or `field_mappings` (any
//! session, committed; or this transaction's own, at its next command; or rolled back), their
//! policies, grants or RLS settings, roles and role memberships, functions, schemas.
//!
//! The list is read under the latest snapshot, as PostgreSQL reads its catalogs: what is
//! committed when the call runs (and this transaction's earlier commands), not what a
//! `REPEATABLE READ` transaction's snapshot saw when it began.  Only so can a kept list be
//! trusted: a list read under an older snapshot than the invalidations already processed would
//! be kept, stale, after them.  In parallel mode no snapshot may be taken: the statement's is
//! used and the list is not kept.
//!
//! Each statement keeps the lists it used for its life (by its executor, forgotten with the
//! executor's memory): a commit by another session part-way through a statement does not change
//! the mappings for the statement's remaining rows or its other calls, as a statement's snapshot
//! would not.  Dropped if a (sub)transaction of this backend that wrote aborts meanwhile (rows it
//! wrote may be in the list).  Calls outside an executor (a plpgsql expression such as
//! `r := tenancy.apply_field_mappings(…)`) keep nothing for later.  Bounded: [`MAX_PINNED`] lists
//! a statement, [`MAX_PINNED_BYTES`] for all running statements (open cursors included); past
//! that, a call reads the list again (the newest committed).
//!
//! Bounded: [`MAX_LISTS`] lists, their mappings weighing at most [`MAX_BYTES`] (their text and
//! what compiling them held on Rust's heap, [`crate::alloc`]); when full the least recently used
//! quarter goes (`super::cache`).
use super::cache::CompiledCache;
use super::mappings::{compiled, Compiled};
use crate::error::raise;
use crate::invalidation::{generation, Watch};
use crate::jsonb::JsonbArg;
use crate::spi::KeptStatement;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Lists kept per backend (an action and a direction, as seen by a user in a context).
pub const MAX_LISTS: usize = 1024;
/// What the mappings the kept lists name may weigh: their text and what compiling them held on
/// Rust's heap (a mapping named by several lists counts in each).
pub const MAX_BYTES: usize = 16 << 20;

/// An action's compiled mappings of a direction, in the order of their target paths.
pub type List = Rc<Vec<Compiled>>;

/// Lists one statement keeps for its life.
const MAX_PINNED: usize = 64;
/// What the lists kept by all running statements of the backend may weigh (as [`MAX_BYTES`]
/// weighs; a list kept by several statements counts in each).
const MAX_PINNED_BYTES: usize = 16 << 20;
/// What keeping one list for a statement costs beyond the list and its key (an empty list is
/// not free).
const PIN_OVERHEAD: usize = 64;

/// What a statement keeps: the lists it used, and what they weigh.
struct Pinned {
    /// [`crate::invalidation::local_aborts`] when they were kept.
    aborts: u64,
    lists: Vec<(Box<[u8]>, List, usize)>,
}

thread_local! {
    /// The lists each running statement keeps, by its executor's per-query memory context.
    static PINS: RefCell<Option<HashMap<usize, Pinned>>> = const { RefCell::new(None) };
    /// What they weigh, all statements together.
    static PINNED_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// Forgets what a statement kept when its executor's memory goes (its end, an error, `CLOSE`).
struct Unpin(usize);

impl Drop for Unpin {
    fn drop(&mut self) {
        // Runs from a memory context reset callback: never while PINS is borrowed here.
        let gone = PINS.with(|pins| {
            let mut pins = pins.try_borrow_mut().ok()?;
            pins.as_mut()?.remove(&self.0)
        });
        if let Some(p) = gone {
            let weight: usize = p.lists.iter().map(|(_, _, w)| *w).sum();
            PINNED_BYTES.with(|b| b.set(b.get().saturating_sub(weight)));
        }
    }
}

/// The executor evaluating the call of `fcinfo`, if it is a live one (its per-query memory
/// context, as an address).
fn statement_of(fcinfo: pg_sys::FunctionCallInfo) -> Option<usize> {
    let cxt = crate::context::statements::caller_memory(fcinfo);
    crate::context::statements::is_live_executor(cxt).then_some(cxt as usize)
}

/// The list `key` names that the statement `cxt` kept, if it kept one since the last abort.
fn pinned(cxt: usize, key: &[u8], aborts: u64) -> Option<List> {
    PINS.with_borrow_mut(|pins| {
        let p = pins.as_mut()?.get_mut(&cxt)?;
        if p.aborts != aborts {
            let weight: usize = p.lists.drain(..).map(|(_, _, w)| w).sum();
            PINNED_BYTES.with(|b| b.set(b.get().saturating_sub(weight)));
            p.aborts = aborts;
        }
        p.lists
            .iter()
            .find(|(k, _, _)| **k == *key)
            .map(|(_, list, _)| list.clone())
    })
}

/// Keep `list` for the statement `cxt`, within [`MAX_PINNED`] and [`MAX_PINNED_BYTES`] (beyond
/// them its next call reads the list again).  The list weighs as in [`LISTS`], plus its key and
/// [`PIN_OVERHEAD`].
fn pin(cxt: usize, key: &[u8], list: &List, weight: usize, aborts: u64) {
    let weight = weight
        .saturating_add(key.len())
        .saturating_add(PIN_OVERHEAD);
    if PINNED_BYTES.with(Cell::get).saturating_add(weight) > MAX_PINNED_BYTES {
        return;
    }
    let known = PINS.with_borrow(|pins| pins.as_ref().is_some_and(|p| p.contains_key(&cxt)));
    if !known {
        // The guard first (it allocates in `cxt`, which may fail): an entry never exists
        // without the guard that removes it.
        // `cxt` is a live executor's per-query memory context (statement_of); the guard is
        // dropped, and the statement's lists forgotten, when that context is reset or deleted.
        pgrx::PgMemoryContexts::For(cxt as pg_sys::MemoryContext)
            .leak_and_drop_on_delete(Unpin(cxt));
    }
    PINS.with_borrow_mut(|pins| {
        let p = pins
            .get_or_insert_with(HashMap::new)
            .entry(cxt)
            .or_insert(Pinned {
                aborts,
                lists: Vec::new(),
            });
        if p.lists.len() < MAX_PINNED {
            p.lists.push((key.into(), list.clone(), weight));
            PINNED_BYTES.with(|b| b.set(b.get() + weight));
        }
    });
}

thread_local! {
    static LISTS: RefCell<CompiledCache<Vec<Compiled>>> =
        RefCell::new(CompiledCache::new(MAX_LISTS, MAX_BYTES));
    /// The generation of [`Watch::Actions`] the kept lists belong to.
    static SEEN: Cell<u64> = const { Cell::new(0) };

    /// The action's mappings of a direction, as the caller reads them (RLS applies); sorted by
    /// target path in Rust (one index scan, no sort or join in the executor).
    static MAPPINGS: KeptStatement = const { KeptStatement::reading_as_caller(
        "SELECT source_path, target_path, transform_config FROM tenancy.field_mappings \
          WHERE tenant_id OPERATOR(pg_catalog.=) tenancy.current_tenant_id() \
            AND action_id OPERATOR(pg_catalog.=) $1 \
            AND direction OPERATOR(pg_catalog.=) $2::tenancy.mapping_direction",
        &[pg_sys::UUIDOID, pg_sys::TEXTOID],
        Watch::Actions,
    ) };
    /// Whether the caller can see the action (asked only when it has no mappings to read).
    static ACTION: KeptStatement = const { KeptStatement::reading_as_caller(
        "SELECT 1 FROM tenancy.actions WHERE tenant_id OPERATOR(pg_catalog.=) tenancy.current_tenant_id() \
           AND id OPERATOR(pg_catalog.=) $1",
        &[pg_sys::UUIDOID],
        Watch::Actions,
    ) };
}

/// A `tenancy.mapping_direction` argument: the enum value's OID (its label is looked up only
/// when the list is read).
pub struct DirectionArg(pub pg_sys::Oid);

impl FromDatum for DirectionArg {
    unsafe fn from_polymorphic_datum(
        d: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        (!is_null).then(|| DirectionArg(pg_sys::Oid::from(d.value() as u32)))
    }
}

crate::jsonb::arg_from_datum!(DirectionArg);

pgrx::impl_sql_translatable!(DirectionArg, "tenancy.mapping_direction");

fn not_found(action: pgrx::Uuid) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
        format!("action {action} not found"),
        Some("An action is found in the tenant of the current context only."),
    )
}

/// The mappings of `action` and `direction` the caller reads in the current context, or P0002
/// when the caller cannot see the action (another tenant's, none, no context).
pub(super) fn of(
    fcinfo: pg_sys::FunctionCallInfo,
    action: pgrx::Uuid,
    direction: &DirectionArg,
) -> List {
    let Some(context) = crate::context::tenant_context(fcinfo) else {
        not_found(action) // the query would compare tenant_id with NULL
    };
    // SAFETY: reads backend-local state.
    let (user, row_security) = unsafe { (pg_sys::GetUserId(), pg_sys::row_security) };
    let mut key = Vec::with_capacity(16 + 4 + 4 + 1 + context.len());
    key.extend_from_slice(action.as_bytes());
    key.extend_from_slice(&direction.0.to_u32().to_le_bytes());
    key.extend_from_slice(&user.to_u32().to_le_bytes());
    key.push(u8::from(row_security));
    key.extend_from_slice(&context);

    let statement = statement_of(fcinfo);
    let aborts = crate::invalidation::local_aborts();
    if let Some(list) = statement.and_then(|cxt| pinned(cxt, &key, aborts)) {
        return list;
    }
    let (list, weight) = kept_or_read(&key, action, direction);
    if let Some(cxt) = statement {
        pin(cxt, &key, &list, weight, aborts);
    }
    list
}

/// The list from this backend's kept lists, or read now (and kept if it may be).
fn kept_or_read(key: &[u8], action: pgrx::Uuid, direction: &DirectionArg) -> (List, usize) {
    let before = generation(Watch::Actions);
    let hit = LISTS.with_borrow_mut(|lists| {
        if SEEN.replace(before) != before {
            lists.clear();
        }
        lists.get_weighed(key)
    });
    if let Some(hit) = hit {
        return hit;
    }

    // SAFETY: reads backend-local state.
    let parallel = unsafe { pg_sys::IsInParallelMode() };
    if !parallel {
        // SAFETY: a copy of the latest snapshot becomes the active one for the read-only
        // queries below (they use the active snapshot), popped after them; an ERROR in between
        // unwinds the snapshot stack at (sub)transaction abort.
        unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
    }
    let (list, weight) = read(action, direction);
    if !parallel {
        // SAFETY: pops the snapshot pushed above.
        unsafe { pg_sys::PopActiveSnapshot() };
    }
    let Some(list) = list else { not_found(action) };
    // Kept only if no invalidation arrived while it was read.  Not on Citus: actions and field
    // mappings are distributed, and a write to them fires the cache triggers on a worker's
    // shard, whose invalidation never reaches this node (src/citus.rs).
    if !parallel && generation(Watch::Actions) == before && !crate::citus::active() {
        LISTS.with_borrow_mut(|lists| lists.insert(key, list.clone(), weight));
    }
    (list, weight)
}

/// Read the list (`None`: the action is not found) and what its mappings weigh (their text and
/// what compiling them held: a list keeps its mappings alive even when the cache of compiled
/// mappings has let them go).
fn read(action: pgrx::Uuid, direction: &DirectionArg) -> (Option<List>, usize) {
    let label = crate::datum::enum_label(pg_sys::Datum::from(direction.0.to_u32()));
    let mut weight = 0usize;
    let mut mappings: Vec<Compiled> = MAPPINGS.with(|m| {
        m.select(
            &[action.into(), label.as_str().into()],
            "reading the field mappings",
            |mut rows| {
                let mut out = Vec::with_capacity(rows.len());
                while rows.next().is_some() {
                    let (Some(source), Some(target)) =
                        (rows.get_datum_by_ordinal(1)?, rows.get_datum_by_ordinal(2)?)
                    else {
                        continue;
                    };
                    // SAFETY: column 3 is jsonb, valid until SPI finishes, after its last use
                    // here (the compiled mapping owns what it keeps).
                    let config = rows.get_datum_by_ordinal(3)?.and_then(|d| unsafe {
                        JsonbArg::from_polymorphic_datum(d, false, pg_sys::JSONBOID)
                    });
                    // SAFETY: text datums of the row, valid until SPI finishes, after their use.
                    let (source, target) = unsafe { (text_bytes(source), text_bytes(target)) };
                    let (mapping, weighs) = compiled(source, target, config.as_ref());
                    weight = weight.saturating_add(weighs);
                    out.push(mapping);
                }
                Ok(out)
            },
        )
    });
    if mappings.is_empty()
        && !ACTION.with(|q| {
            q.select(&[action.into()], "reading the action", |rows| {
                Ok(!rows.is_empty())
            })
        })
    {
        return (None, 0);
    }
    // The order of their target paths, byte by byte (a path is unique per action and direction).
    mappings.sort_by(|a, b| target_text(a).cmp(target_text(b)));
    let weight = weight + mappings.len() * std::mem::size_of::<Compiled>();
    (Some(Rc::new(mappings)), weight)
}

/// The bytes of a text datum (detoasted if it must be).
///
/// # Safety
/// `d` must be a text datum that outlives the returned slice.
unsafe fn text_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: the caller's; pg_detoast_datum_packed returns the datum itself when it is inline.
    unsafe {
        pgrx::varlena::varlena_to_byte_slice(pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr()))
    }
}

fn target_text(m: &Compiled) -> &[u8] {
    match &**m {
        Ok(m) => m.target_text.as_bytes(),
        Err(_) => &[],
    }
}

/// For `tenancy.library_info()`: this backend's kept lists.
pub fn cache_info() -> serde_json::Value {
    let mut info = LISTS.with_borrow(CompiledCache::info);
    if let serde_json::Value::Object(o) = &mut info {
        // What running statements (open cursors included) keep for their life.
        let (statements, lists) = PINS.with_borrow(|pins| {
            pins.as_ref().map_or((0, 0), |pins| {
                (
                    pins.len(),
                    pins.values().map(|p| p.lists.len()).sum::<usize>(),
                )
            })
        });
        o.insert(
            "pinned".into(),
            serde_json::json!({"statements": statements, "lists": lists, "bytes": PINNED_BYTES.with(Cell::get)}),
        );
    }
    info
}
