//! Routing a tenant's query to its shard.
//!
//! Citus sends a query to one shard only when it sees `tenant_id = <constant>` among the query's
//! conditions; the policy's `tenant_id = tenancy.current_tenant_id()` is not a constant (Citus
//! issue 7415), so a member's `SELECT … FROM tenancy.projects` would run on every shard.  This
//! planner hook, which runs before Citus's, adds `tenant_id = '<the context's tenant>'` to each
//! distributed table of the query where the policies imply it anyway:
//!
//! * the table is distributed by `tenant_id` and its row security applies to the role
//!   (`check_enable_rls`: not a superuser, a BYPASSRLS role or an owner without FORCE);
//! * every permissive policy of the table that applies to the role is one of pg_tenancy's
//!   per-command policies, which all compare `tenant_id` with the context's tenant (a role with
//!   `service_role`'s privileges, whose policy sees every tenant, is never routed).
//!
//! The condition goes to the table's security conditions (`securityQuals`, where the policies
//! are), so it filters that table's rows only, also on the nullable side of an outer join, and it
//! removes only rows the policies remove.  Citus does not send these conditions to the workers
//! (they apply the shards' policies themselves), but it prunes shards with them.
//!
//! A plan with a tenant in it must never run for another tenant: each such plan depends on an
//! invalidation item of its own (`PlanInvalItem`), and every change of the context (a new tenant,
//! the end of a transaction or subtransaction) sends that invalidation to this backend's plan
//! cache before the next statement, so a prepared statement or a PL/pgSQL query is planned again
//! for the new context, never run with the old tenant.
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// The `TYPEOID` hash value the routed plans' invalidation item carries: a value no type's
/// hash is expected to have (a collision only makes that type's cached plans planned again).
const ROUTED_PLANS: u32 = 0x7465_6e61;

/// `uuid = uuid`.
const UUID_EQ_OP: pg_sys::Oid = pg_sys::Oid::from_u32(2972);

static mut PREV_PLANNER: pg_sys::planner_hook_type = None;

thread_local! {
    /// Some plan made since the last invalidation has a tenant in it.
    static ROUTED: Cell<bool> = const { Cell::new(false) };
    /// Running our own catalog query (not routed).
    static INSIDE: Cell<bool> = const { Cell::new(false) };
    /// Per (relation, role): the attribute number of `tenant_id` when the relation is routed.
    static ROUTABLE: RefCell<HashMap<(pg_sys::Oid, pg_sys::Oid), Option<i16>>> = RefCell::new(HashMap::new());
    static CALLBACKS: Cell<bool> = const { Cell::new(false) };
}

/// Install the planner hook (from `super::init`, at server start).  It does nothing where Citus
/// is not active.
pub(super) fn init() {
    // SAFETY: _PG_init runs once, single-threaded, before any query; we chain to the previous
    // hook (Citus's, which is loaded first).
    unsafe {
        PREV_PLANNER = pg_sys::planner_hook;
        pg_sys::planner_hook = Some(planner);
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn planner(
    parse: *mut pg_sys::Query,
    query_string: *const std::ffi::c_char,
    cursor_options: std::ffi::c_int,
    bound_params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    super::reference_writes::refuse_row_locks(parse);
    let routed = route(parse);
    // SAFETY: the planner's arguments, passed on unchanged.
    let stmt = unsafe {
        match PREV_PLANNER {
            Some(prev) => prev(parse, query_string, cursor_options, bound_params),
            None => pg_sys::standard_planner(parse, query_string, cursor_options, bound_params),
        }
    };
    if routed && !stmt.is_null() {
        // SAFETY: a node allocated in the current memory context, as the planner's own items are.
        unsafe {
            let item = pg_sys::palloc0(std::mem::size_of::<pg_sys::PlanInvalItem>())
                as *mut pg_sys::PlanInvalItem;
            (*item).type_ = pg_sys::NodeTag::T_PlanInvalItem;
            (*item).cacheId = pg_sys::SysCacheIdentifier::TYPEOID as i32;
            (*item).hashValue = ROUTED_PLANS;
            (*stmt).invalItems = pg_sys::lappend((*stmt).invalItems, item.cast());
        }
        ROUTED.with(|r| r.set(true));
    }
    stmt
}

/// The context changed, or may have (a transaction or subtransaction ended): every plan made with
/// a tenant in it is planned again before it runs.
pub fn context_changed() {
    if ROUTED.with(|r| r.replace(false)) {
        // SAFETY: runs this backend's syscache callbacks for one hash value: the plan cache marks
        // the plans that depend on it invalid (nothing is read or allocated).
        unsafe {
            pg_sys::CallSyscacheCallbacks(pg_sys::SysCacheIdentifier::TYPEOID as i32, ROUTED_PLANS)
        };
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_routable(_arg: pg_sys::Datum, _relid: pg_sys::Oid) {
    // Runs while invalidations are processed: no catalog access, and a borrow may be live.
    ROUTABLE.with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            r.clear();
        }
    });
}

/// Add the tenant conditions to `parse`; whether any was added.
fn route(parse: *mut pg_sys::Query) -> bool {
    if parse.is_null()
        || INSIDE.with(Cell::get)
        || crate::superuser::internal()
        || !super::active()
        || super::consumer_gpid().is_some()
    {
        return false;
    }
    // Reading the context may read tables (a membership not cached yet), whose planning must not
    // come back here.
    let tenant = super::while_set(&INSIDE, || crate::context::current().tenant);
    let Some(tenant) = tenant else {
        return false;
    };
    if !CALLBACKS.with(|c| c.replace(true)) {
        // SAFETY: registers a plain function for the life of the backend.
        unsafe {
            pg_sys::CacheRegisterRelcacheCallback(Some(forget_routable), pg_sys::Datum::from(0))
        };
    }
    let mut state = Walk {
        tenant,
        added: false,
    };
    // SAFETY: a Query the planner was given; the walker only reads it and appends conditions to
    // its range table entries.
    unsafe { walk(parse.cast(), (&mut state as *mut Walk).cast()) };
    state.added
}

struct Walk {
    tenant: pgrx::Uuid,
    added: bool,
}

#[pg_guard]
unsafe extern "C-unwind" fn walk(node: *mut pg_sys::Node, context: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // SAFETY: nodes of a valid query tree; `context` is the Walk of `route`.
    unsafe {
        if (*node).type_ == pg_sys::NodeTag::T_Query {
            let query = node as *mut pg_sys::Query;
            let state = &mut *(context as *mut Walk);
            let rtable = pgrx::list::PgList::<pg_sys::RangeTblEntry>::from_pg((*query).rtable);
            for (i, rte) in rtable.iter_ptr().enumerate() {
                let index = i as i32 + 1;
                // The target of an INSERT or MERGE is not scanned by this query's plan.
                let scanned = (*query).resultRelation != index
                    || matches!(
                        (*query).commandType,
                        pg_sys::CmdType::CMD_UPDATE | pg_sys::CmdType::CMD_DELETE
                    );
                if (*rte).rtekind == pg_sys::RTEKind::RTE_RELATION && scanned {
                    if let Some(attnum) = routable((*rte).relid) {
                        add_condition(rte, index, attnum, &state.tenant);
                        state.added = true;
                    }
                }
            }
            return pg_sys::query_tree_walker(query, Some(walk), context, 0);
        }
        pg_sys::expression_tree_walker(node, Some(walk), context)
    }
}

/// `rte.securityQuals += tenant_id = '<tenant>'`.
///
/// # Safety
/// `rte` is the range table entry `index` of the query being planned.
unsafe fn add_condition(
    rte: *mut pg_sys::RangeTblEntry,
    index: i32,
    attnum: i16,
    tenant: &pgrx::Uuid,
) {
    // SAFETY: nodes made in the planner's memory context; the uuid's 16 bytes are copied there.
    unsafe {
        let bytes = pg_sys::palloc(16) as *mut u8;
        std::ptr::copy_nonoverlapping(tenant.as_bytes().as_ptr(), bytes, 16);
        let value = pg_sys::makeConst(
            pg_sys::UUIDOID,
            -1,
            pg_sys::InvalidOid,
            16,
            pg_sys::Datum::from(bytes),
            false,
            false,
        );
        let column = pg_sys::makeVar(
            index as _,
            attnum,
            pg_sys::UUIDOID,
            -1,
            pg_sys::InvalidOid,
            0,
        );
        let condition = pg_sys::make_opclause(
            UUID_EQ_OP,
            pg_sys::BOOLOID,
            false,
            column.cast(),
            value.cast(),
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
        ) as *mut pg_sys::OpExpr;
        pg_sys::set_opfuncid(condition);
        (*rte).securityQuals = pg_sys::lappend((*rte).securityQuals, condition.cast());
    }
}

/// The attribute number of `tenant_id` when `relid` is routed for the current role (see the
/// module's header), else `None`.  Kept per backend until the next relcache invalidation.
fn routable(relid: pg_sys::Oid) -> Option<i16> {
    // SAFETY: this backend's current user, and a syscache lookup.
    let (role, catalog) = unsafe {
        (
            pg_sys::GetUserId(),
            pg_sys::get_rel_namespace(relid) == pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
        )
    };
    if catalog {
        return None;
    }
    if let Some(hit) = ROUTABLE.with(|r| r.borrow().get(&(relid, role)).copied()) {
        return hit;
    }
    // SAFETY: whether row security applies to this relation for the current user (no error).
    let rls = unsafe { pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, true) };
    let found = if rls == pg_sys::CheckEnableRlsResult::RLS_ENABLED as i32 {
        // Planned with the caller's role but not its search_path: its operators are pg_catalog's
        // (a member's own `=` on text, first on its path, ran here: hostile_planted on Citus).
        let answer = super::while_set(&INSIDE, || {
            super::catalog_query(|| {
                crate::spi::read_one::<i16>(
            "SELECT a.attnum
               FROM pg_catalog.pg_dist_partition d
               JOIN pg_catalog.pg_attribute a
                 ON a.attrelid = d.logicalrelid AND a.attname = 'tenant_id'
                AND a.atttypid = 'pg_catalog.uuid'::pg_catalog.regtype AND NOT a.attisdropped
              WHERE d.logicalrelid = $1 AND d.partmethod = 'h'
                AND pg_catalog.column_to_column_name(d.logicalrelid, d.partkey) = 'tenant_id'
                AND NOT EXISTS (
                    SELECT FROM pg_catalog.pg_policy p
                     WHERE p.polrelid = d.logicalrelid AND p.polpermissive
                       AND p.polname NOT IN ('tenancy_select', 'tenancy_insert', 'tenancy_update', 'tenancy_delete')
                       AND (0::pg_catalog.oid = ANY (p.polroles)
                            OR EXISTS (SELECT FROM pg_catalog.unnest(p.polroles) r
                                        WHERE pg_catalog.pg_has_role($2, r, 'USAGE'))))",
            &[relid.into(), role.into()],
        )
            })
        });
        answer.ok().flatten()
    } else {
        None
    };
    // Read in parallel mode on the statement's snapshot (crate::spi::read_one): not kept.
    // SAFETY: reads backend-local transaction state.
    if unsafe { !pg_sys::IsInParallelMode() } {
        ROUTABLE.with(|r| {
            if let Ok(mut r) = r.try_borrow_mut() {
                r.insert((relid, role), found);
            }
        });
    }
    found
}
