//! Datums in and out: the few conversions pgrx does not give directly (a uuid as an index-scan
//! argument, a timestamptz as jsonb writes it, an enum's label, a column's bytes or text).
use pgrx::pg_sys;
use std::ffi::CStr;

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
