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

/// The first row of a query that only reads, run as pgrx's `Spi::get_one` and `get_two` run it
/// but without asking for a transaction id: they go through `SpiClient::update`, which does (a
/// read-only request then wrote a WAL record at commit, took a subtransaction id in every
/// savepoint that read, and would fail on a standby).  SPI runs it in its default mode, as it ran
/// it before: on a snapshot taken after the query's locks (which process the invalidations that
/// came before it), after a command counter increment (this transaction's earlier commands are
/// seen); neither assigns a transaction id.  During a parallel query, where neither may be taken,
/// read-only, on the statement's snapshot: what it finds there must not be kept past the query
/// (placements, routing and the watched tables are not kept in parallel mode).  `read` gets the
/// row, inside the SPI connection; [`Row::get`] converts into the caller's memory context.
/// `Err(InvalidPosition)` when there is no row, as pgrx's `get_one` answers.
fn first_row<R>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid],
    read: impl FnOnce(&Row) -> pgrx::spi::SpiResult<R>,
) -> pgrx::spi::SpiResult<R> {
    let query = std::ffi::CString::new(query).expect("a query without NUL");
    let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
    let mut values: Vec<pg_sys::Datum> = args
        .iter()
        .map(|a| {
            a.datum()
                .map_or(pg_sys::Datum::from(0usize), |d| d.sans_lifetime())
        })
        .collect();
    let nulls: Vec<std::ffi::c_char> = args
        .iter()
        .map(|a| if a.datum().is_some() { b' ' } else { b'n' } as std::ffi::c_char)
        .collect();
    first_row_of(&query, &mut types, &mut values, &nulls, read)
}

/// [`first_row`] with its arguments as SPI takes them (`nulls`: `' '` or `'n'` each), for a
/// caller that has them so (src/lookup.rs: an index's key datums and types).
pub(crate) fn first_row_of<R>(
    query: &std::ffi::CStr,
    types: &mut [pg_sys::Oid],
    values: &mut [pg_sys::Datum],
    nulls: &[std::ffi::c_char],
    read: impl FnOnce(&Row) -> pgrx::spi::SpiResult<R>,
) -> pgrx::spi::SpiResult<R> {
    assert!(types.len() == values.len() && values.len() == nulls.len());
    // SAFETY: a balanced SPI connection (an ERROR in between is cleaned up by the abort); the row
    // is read by `read` before SPI_finish frees it.
    unsafe {
        let outer = pg_sys::CurrentMemoryContext;
        let connected = pg_sys::SPI_connect();
        if connected < 0 {
            return Err(pgrx::spi::SpiError::SpiError(
                pgrx::spi::SpiErrorCodes::Connect,
            ));
        }
        let code = pg_sys::SPI_execute_with_args(
            query.as_ptr(),
            types.len() as i32,
            types.as_mut_ptr(),
            values.as_mut_ptr(),
            nulls.as_ptr(),
            pg_sys::IsInParallelMode(),
            1,
        );
        let result = match Spi::check_status(code) {
            Err(e) => Err(e),
            Ok(_) if pg_sys::SPI_processed == 0 || pg_sys::SPI_tuptable.is_null() => {
                Err(pgrx::spi::SpiError::InvalidPosition)
            }
            Ok(_) => {
                let table = pg_sys::SPI_tuptable;
                read(&Row {
                    tuple: *(*table).vals,
                    desc: (*table).tupdesc,
                    outer,
                })
            }
        };
        pg_sys::SPI_finish();
        result
    }
}

/// A row of [`first_row`].
pub(crate) struct Row {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    /// The memory context of `first_row`'s caller, which outlives SPI's.
    outer: pg_sys::MemoryContext,
}

impl Row {
    /// Column `n` (from 1) as SPI has it (`None` for NULL): valid until SPI_finish.
    pub(crate) fn datum(&self, n: i32) -> Option<pg_sys::Datum> {
        // SAFETY: the row and its descriptor are SPI's, alive while `first_row` reads; a column
        // outside the row reads as NULL.
        unsafe {
            if n < 1 || n > (*self.desc).natts {
                return None;
            }
            let mut is_null = false;
            let datum = pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut is_null);
            (!is_null).then_some(datum)
        }
    }

    /// Column `n` (from 1), converted as pgrx converts it (its type checked), into the caller's
    /// memory context: a value that points into PostgreSQL memory stays valid after SPI_finish.
    fn get<A: FromDatum + IntoDatum>(&self, n: i32) -> pgrx::spi::SpiResult<Option<A>> {
        // SAFETY: the row and its descriptor are SPI's, alive while `first_row` reads; `n` is
        // checked against the row's width; `outer` is the caller's context, alive.
        unsafe {
            if n < 1 || n > (*self.desc).natts {
                return Err(pgrx::spi::SpiError::SpiError(
                    pgrx::spi::SpiErrorCodes::NoAttribute,
                ));
            }
            let mut is_null = false;
            let datum = pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut is_null);
            let oid = pg_sys::SPI_gettypeid(self.desc, n);
            Ok(A::try_from_datum_in_memory_context(
                pgrx::PgMemoryContexts::For(self.outer),
                datum,
                is_null,
                oid,
            )?)
        }
    }
}

/// The first column of the first row of a query that only reads (see [`first_row`]).
pub fn read_one<A: FromDatum + IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> pgrx::spi::SpiResult<Option<A>> {
    first_row(query, args, |row| row.get(1))
}

/// The first two columns of the first row of a query that only reads (see [`first_row`]).
pub fn read_two<A: FromDatum + IntoDatum, B: FromDatum + IntoDatum>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid],
) -> pgrx::spi::SpiResult<(Option<A>, Option<B>)> {
    first_row(query, args, |row| Ok((row.get(1)?, row.get(2)?)))
}
