//! The `updated_at` trigger: `tenancy.set_updated_at([column])`.
//!
//! A plain C-language trigger function, written the way contrib `moddatetime` is: it replaces one
//! column of the new tuple with `pg_sys::heap_modify_tuple_by_cols`.  It is cheaper than
//! moddatetime, which parses the string 'now' through `timestamptz_in` on every row; this one takes
//! the transaction start time directly (the same value as `now()`, as the seeds' plpgsql trigger
//! uses).  It does not go through pgrx's `PgHeapTuple`, whose composite-datum check
//! (CVE-2026-6460) is only fixed in pgrx 0.19.4.
//!
//! The column is the trigger's first argument, `updated_at` by default; it must be `timestamptz`
//! or `timestamp`.  `tenancy.manage_updated_at(regclass)` (sql/triggers.sql) attaches it.
use crate::error::raise;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::ffi::{c_int, CStr};

/// fmgr's "version 1 calling convention" record for `set_updated_at`.
#[no_mangle]
pub extern "C" fn pg_finfo_set_updated_at() -> &'static pg_sys::Pg_finfo_record {
    static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

fn misuse(message: &str) -> ! {
    raise(
        PgSqlErrorCode::ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED,
        message,
        None,
    )
}

/// # Safety
/// Called by the PostgreSQL function manager with a valid `fcinfo`.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn set_updated_at(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let context = (*fcinfo).context;
    if context.is_null() || (*context).type_ != pg_sys::NodeTag::T_TriggerData {
        misuse("tenancy.set_updated_at() must be called as a trigger");
    }
    let trigdata = context as *mut pg_sys::TriggerData;
    let event = (*trigdata).tg_event;
    if event & pg_sys::TRIGGER_EVENT_ROW == 0
        || event & pg_sys::TRIGGER_EVENT_TIMINGMASK != pg_sys::TRIGGER_EVENT_BEFORE
    {
        misuse("tenancy.set_updated_at() must be fired BEFORE ... FOR EACH ROW");
    }
    let tuple = match event & pg_sys::TRIGGER_EVENT_OPMASK {
        pg_sys::TRIGGER_EVENT_UPDATE => (*trigdata).tg_newtuple,
        pg_sys::TRIGGER_EVENT_INSERT => (*trigdata).tg_trigtuple,
        _ => misuse("tenancy.set_updated_at() must be fired for INSERT or UPDATE"),
    };
    let relation = (*trigdata).tg_relation;
    let tupdesc = (*relation).rd_att;

    let trigger = (*trigdata).tg_trigger;
    let column: &CStr = match (*trigger).tgnargs {
        0 => c"updated_at",
        1 => CStr::from_ptr(*(*trigger).tgargs),
        _ => misuse("tenancy.set_updated_at() takes at most one argument, the column name"),
    };

    let attnum = pg_sys::SPI_fnumber(tupdesc, column.as_ptr());
    if attnum <= 0 {
        raise(
            PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "tenancy.set_updated_at(): column \"{}\" does not exist",
                column.to_string_lossy()
            ),
            None,
        );
    }
    let now = pg_sys::GetCurrentTransactionStartTimestamp();
    let mut value = match pg_sys::SPI_gettypeid(tupdesc, attnum) {
        pg_sys::TIMESTAMPTZOID => pg_sys::Datum::from(now),
        // timestamp(timestamptz): the transaction start in the session's time zone.
        pg_sys::TIMESTAMPOID => pg_sys::OidFunctionCall1Coll(
            pg_sys::Oid::from(pg_sys::F_TIMESTAMP_TIMESTAMPTZ),
            pg_sys::InvalidOid,
            pg_sys::Datum::from(now),
        ),
        _ => raise(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "tenancy.set_updated_at(): column \"{}\" must be of type timestamptz or timestamp",
                column.to_string_lossy()
            ),
            None,
        ),
    };
    let mut column_number: c_int = attnum;
    let mut is_null = false;
    // Raw pointers: the arrays are `*mut` up to PostgreSQL 16 and `*const` from 17 on.
    let modified = pg_sys::heap_modify_tuple_by_cols(
        tuple,
        tupdesc,
        1,
        &raw mut column_number,
        &raw mut value,
        &raw mut is_null,
    );
    pg_sys::Datum::from(modified)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn updated_at_moves_on_update_and_keeps_other_columns() {
        Spi::run(
            "CREATE TABLE t (id int PRIMARY KEY, v text, updated_at timestamptz NOT NULL DEFAULT '2000-01-01');
             INSERT INTO t VALUES (1, 'a');
             SELECT tenancy.manage_updated_at('t');
             UPDATE t SET v = 'b' WHERE id = 1;",
        )
        .unwrap();
        let (v, same) =
            Spi::get_two::<String, bool>("SELECT v, updated_at = now() FROM t").unwrap();
        assert_eq!(v.as_deref(), Some("b"));
        assert_eq!(same, Some(true));
    }

    #[pg_test]
    fn named_timestamp_column() {
        Spi::run(
            "CREATE TABLE t2 (id int, modified timestamp);
             INSERT INTO t2 VALUES (1, NULL);
             SELECT tenancy.manage_updated_at('t2', 'modified');
             UPDATE t2 SET id = 2;",
        )
        .unwrap();
        assert_eq!(
            Spi::get_one::<bool>("SELECT modified IS NOT NULL FROM t2").unwrap(),
            Some(true)
        );
    }

    #[pg_test(
        error = "tenancy.manage_updated_at(): column \"updated_at\" of tenancy.t3 must be timestamptz or timestamp"
    )]
    fn wrong_column_type_is_refused() {
        Spi::run(
            "CREATE TABLE t3 (id int, updated_at text); SELECT tenancy.manage_updated_at('t3');",
        )
        .unwrap();
    }
}
