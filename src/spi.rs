//! Statements planned once per backend and kept, run through SPI (the hot writes, and hot reads
//! made as the caller).
use pgrx::prelude::*;

/// A statement planned once per backend and kept (the plan cache replans it when the role or the
/// tables change), run through SPI.  For the hot writes (store_credential, log_request), which
/// run it inside [`crate::superuser::as_extension`] after their own checks: the foreign keys still decide what rows
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
