//! Statements planned once per backend and kept, run through SPI (the hot writes, and hot reads
//! made as the caller); one-row reads that leave the transaction read-only ([`read_one`]).
use crate::invalidation::Watch;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::rc::Rc;

/// A statement planned once per backend and kept (the plan cache replans it when the role or the
/// tables change), run through SPI.  For the hot writes (store_credential, log_request), which
/// run it inside [`crate::superuser::as_extension`] after their own checks: the foreign keys still
/// decide what rows may reference; and for hot reads made as the caller (actions and field
/// mappings: RLS applies).  Every name in `sql` must be schema-qualified.
///
/// A read as the caller is planned again whenever its [`Watch`] moves: PostgreSQL's plan cache
/// rewrites a query again (adding or dropping the policies' conditions) when the user or
/// `row_security` changes, not when the user's role attributes or memberships do (measured on
/// 14: after `ALTER ROLE … BYPASSRLS` a kept plan went on applying the policies, so the reverse
/// would go on bypassing them).
pub struct KeptStatement {
    sql: &'static str,
    types: &'static [pg_sys::Oid],
    mutating: bool,
    watch: Option<Watch>,
    plan: RefCell<Option<(u64, Rc<pgrx::spi::OwnedPreparedStatement>)>>,
}

impl KeptStatement {
    /// A statement that writes.
    pub const fn new(sql: &'static str, types: &'static [pg_sys::Oid]) -> KeptStatement {
        KeptStatement {
            sql,
            types,
            mutating: true,
            watch: None,
            plan: RefCell::new(None),
        }
    }

    /// A query that only reads (run read-only: it sees the calling statement's snapshot).
    pub const fn reading(sql: &'static str, types: &'static [pg_sys::Oid]) -> KeptStatement {
        KeptStatement {
            sql,
            types,
            mutating: false,
            watch: None,
            plan: RefCell::new(None),
        }
    }

    /// A query that reads as the caller, under RLS: planned again whenever `watch` moves (roles,
    /// role memberships, functions, schemas, its tables: see [`crate::invalidation`]).
    pub const fn reading_as_caller(
        sql: &'static str,
        types: &'static [pg_sys::Oid],
        watch: Watch,
    ) -> KeptStatement {
        KeptStatement {
            sql,
            types,
            mutating: false,
            watch: Some(watch),
            plan: RefCell::new(None),
        }
    }

    fn plan(
        &self,
        client: &pgrx::spi::SpiClient<'_>,
    ) -> pgrx::spi::SpiResult<Rc<pgrx::spi::OwnedPreparedStatement>> {
        let generation = self.watch.map_or(0, crate::invalidation::generation);
        if let Some((planned_at, plan)) = &*self.plan.borrow() {
            if *planned_at == generation {
                return Ok(plan.clone());
            }
        }
        let types: Vec<PgOid> = self.types.iter().map(|t| PgOid::from(*t)).collect();
        let stmt = if self.mutating {
            client.prepare_mut(self.sql, &types)?
        } else {
            client.prepare(self.sql, &types)?
        };
        let plan = Rc::new(stmt.keep());
        *self.plan.borrow_mut() = Some((generation, plan.clone()));
        Ok(plan)
    }

    /// Run it with `args`; `what` names it in an error.
    pub fn execute(&self, args: &[pgrx::datum::DatumWithOid], what: &str) {
        Spi::connect_mut(|client| {
            let stmt = self.plan(client)?;
            client.update(&*stmt, None, args).map(|_| ())
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
            rows(client.select(&*stmt, None, args)?)
        })
        .unwrap_or_else(|e| crate::error::spi_failed(what, e))
    }
}

/// Run `f` with a read-only SPI connection: what pgrx's `Spi::get_one`, `get_two` and their
/// `_with_args` forms do, without their `SpiClient::update`, which asks for a transaction id
/// (a read-only request then writes a WAL record at commit, a subtransaction id in every
/// savepoint that reads, and errors on a standby).  The query runs on the calling statement's
/// snapshot; outside a statement (no active snapshot) on a transaction snapshot pushed for it.
pub fn reading<R>(
    f: impl FnOnce(&pgrx::spi::SpiClient<'_>) -> pgrx::spi::SpiResult<R>,
) -> pgrx::spi::SpiResult<R> {
    // SAFETY: backend-local snapshot state; a snapshot pushed here is popped below, or by the
    // (sub)transaction's abort if `f` raises.
    let pushed = unsafe {
        let none = !pg_sys::ActiveSnapshotSet();
        if none {
            pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        }
        none
    };
    let result = Spi::connect(f);
    if pushed {
        // SAFETY: the snapshot pushed above, still on top.
        unsafe { pg_sys::PopActiveSnapshot() };
    }
    result
}

/// The first column of the first row of a query that only reads (see [`reading`]).
pub fn read_one<A: FromDatum + IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> pgrx::spi::SpiResult<Option<A>> {
    reading(|client| client.select(query, Some(1), args)?.first().get_one())
}

/// The first two columns of the first row of a query that only reads (see [`reading`]).
pub fn read_two<A: FromDatum + IntoDatum, B: FromDatum + IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> pgrx::spi::SpiResult<(Option<A>, Option<B>)> {
    reading(|client| client.select(query, Some(1), args)?.first().get_two())
}
