//! jsonb in and out without text: the vault encrypts a jsonb argument's binary container as it
//! is, and builds `read_credential`'s result with PostgreSQL's own jsonb builder, the decrypted
//! container spliced in.  No JSON is lexed or printed on either path (pgrx's `JsonB` goes
//! through text and a `serde_json::Value` both ways; for the vault that was most of the cost).
//!
//! The binary container is PostgreSQL's on-disk jsonb format, stable across major versions (it
//! is what pg_upgrade keeps) and, like every on-disk format, in the machine's byte order.
use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::prelude::*;
use pgrx::IntoDatum;

/// Flag bits of a jsonb container's header (src/include/utils/jsonb.h).
pub const JB_CMASK: u32 = 0x0FFF_FFFF;
pub const JB_FSCALAR: u32 = 0x1000_0000;
pub const JB_FOBJECT: u32 = 0x2000_0000;
pub const JB_FARRAY: u32 = 0x4000_0000;

/// A jsonb argument, detoasted, borrowed for the call.
pub struct JsonbArg {
    varlena: *mut pg_sys::varlena,
}

impl JsonbArg {
    /// The root container: what `JsonbValue.binary` points at, and what the vault encrypts.
    pub fn container(&self) -> &[u8] {
        // SAFETY: a detoasted (4-byte header) varlena that lives for the function call.
        unsafe {
            let len = pgrx::varsize(self.varlena) - pg_sys::VARHDRSZ;
            std::slice::from_raw_parts(pgrx::vardata_any(self.varlena) as *const u8, len)
        }
    }

    /// The value as a `serde_json::Value`, through PostgreSQL's jsonb printer (exact: jsonb text is
    /// JSON).  `None` for a number JSON cannot carry as a double (jsonb's numeric has no such
    /// limit: `1e400`) or a value nested more than 128 levels deep (serde_json's recursion
    /// limit, which bounds the recursion of whatever is done with the value).
    pub fn to_value(&self) -> Option<serde_json::Value> {
        // SAFETY: JsonbToCString prints the root container (the varlena's data) into a palloc'd,
        // NUL-terminated string, which is copied and freed here.
        unsafe {
            let text = pg_sys::JsonbToCString(
                std::ptr::null_mut(),
                pgrx::vardata_any(self.varlena) as *mut pg_sys::JsonbContainer,
                self.container().len() as i32,
            );
            let value = serde_json::from_slice(std::ffi::CStr::from_ptr(text).to_bytes()).ok();
            pg_sys::pfree(text.cast());
            value
        }
    }

    /// Whether the value is a JSON object (not an array, not a scalar).
    pub fn is_object(&self) -> bool {
        container_is_object(self.container())
    }
}

/// Whether a root container holds an object.
pub fn container_is_object(container: &[u8]) -> bool {
    container
        .get(..4)
        .map(|h| u32::from_ne_bytes([h[0], h[1], h[2], h[3]]))
        .is_some_and(|h| h & JB_FOBJECT != 0 && h & (JB_FARRAY | JB_FSCALAR) == 0)
}

impl FromDatum for JsonbArg {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        (!is_null).then(|| JsonbArg {
            // SAFETY: a jsonb datum; pg_detoast_datum returns a 4-byte-header copy if needed.
            varlena: unsafe { pg_sys::pg_detoast_datum(datum.cast_mut_ptr()) },
        })
    }
}

/// `ArgAbi` for an argument type that implements `FromDatum` (a NULL is an error unless the
/// argument is an `Option`), as pgrx's own `argue_from_datum!` impls.
macro_rules! arg_from_datum {
    ($t:ty) => {
        // SAFETY: as pgrx's own argue_from_datum! impls.
        unsafe impl<'fcx> pgrx::callconv::ArgAbi<'fcx> for $t {
            unsafe fn unbox_arg_unchecked(arg: pgrx::callconv::Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                // SAFETY: the caller's (pgrx's argument contract): `arg` is this type's datum.
                unsafe {
                    arg.unbox_arg_using_from_datum()
                        .unwrap_or_else(|| panic!("argument {index} must not be null"))
                }
            }

            unsafe fn unbox_nullable_arg(
                arg: pgrx::callconv::Arg<'_, 'fcx>,
            ) -> pgrx::nullable::Nullable<Self> {
                // SAFETY: as above.
                unsafe { arg.unbox_arg_using_from_datum().into() }
            }
        }
    };
}
pub(crate) use arg_from_datum;

arg_from_datum!(JsonbArg);

pgrx::impl_sql_translatable!(JsonbArg, "jsonb");

/// A jsonb result made by [`ObjectBuilder`].
pub struct JsonbDatum(pg_sys::Datum);

// SAFETY: returns a palloc'd jsonb datum.
unsafe impl BoxRet for JsonbDatum {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        // SAFETY: a palloc'd jsonb datum of the function's declared result type.
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

pgrx::impl_sql_translatable!(JsonbDatum, "jsonb");

impl JsonbDatum {
    /// The jsonb of a finished builder value (what the last `pushJsonbValue` returned).
    ///
    /// # Safety
    /// `value` must be a complete JsonbValue from `pushJsonbValue`.
    pub unsafe fn from_value(value: *mut pg_sys::JsonbValue) -> JsonbDatum {
        // SAFETY: the caller's.
        unsafe { JsonbDatum(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(value))) }
    }

    /// The root container of the value (its bytes after the varlena header).
    pub fn container(&self) -> &[u8] {
        // SAFETY: a jsonb this type built (JsonbValueToJsonb or jsonb_in): a palloc'd,
        // non-toasted varlena that lives as long as the current memory context.
        unsafe {
            let varlena = self.0.cast_mut_ptr::<pg_sys::varlena>();
            let len = pgrx::varsize_any(varlena) - pg_sys::VARHDRSZ;
            std::slice::from_raw_parts(pgrx::vardata_any(varlena) as *const u8, len)
        }
    }
}

/// A jsonb from JSON text (PostgreSQL's own parser, `jsonb_in`): for small values built in Rust,
/// such as `explain` lists.  The text must be valid JSON (serde_json's output is).
pub fn from_text(text: &str) -> JsonbDatum {
    let c =
        std::ffi::CString::new(text).expect("JSON text has no NUL byte (serde_json escapes it)");
    // SAFETY: jsonb_in parses a NUL-terminated string and returns a palloc'd jsonb.
    let datum = unsafe {
        pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[c.as_c_str().into_datum()])
    };
    JsonbDatum(datum.expect("jsonb_in returns a value"))
}

impl IntoDatum for JsonbDatum {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

/// Builds a jsonb object with PostgreSQL's jsonb builder (`pushJsonbValue`); everything it is
/// given is copied into the current memory context first.
pub struct ObjectBuilder {
    state: *mut pg_sys::JsonbParseState,
}

/// A JSON null, as the jsonb builder takes it (also the blank that other values start from).
pub fn null_value() -> pg_sys::JsonbValue {
    pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvNull,
        // SAFETY: an all-zero union is a valid (unused) payload for jbvNull.
        val: unsafe { std::mem::zeroed() },
    }
}

/// A JSON string, copied into the current memory context (`pnstrdup`).
pub fn pstring(s: &str) -> pg_sys::JsonbValue {
    let mut v = null_value();
    v.type_ = pg_sys::jbvType::jbvString;
    v.val.string.len = s.len() as i32;
    // SAFETY: pnstrdup copies len bytes into the current memory context.
    v.val.string.val = unsafe { pg_sys::pnstrdup(s.as_ptr().cast(), s.len()) };
    v
}

impl ObjectBuilder {
    pub fn new() -> ObjectBuilder {
        let mut b = ObjectBuilder {
            state: std::ptr::null_mut(),
        };
        b.push(pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT, None);
        b
    }

    fn push(&mut self, token: pg_sys::JsonbIteratorToken::Type, value: Option<pg_sys::JsonbValue>) {
        let mut value = value;
        let ptr = value
            .as_mut()
            .map_or(std::ptr::null_mut(), |v| v as *mut pg_sys::JsonbValue);
        // SAFETY: the builder's own state; scalar values point at palloc'd copies.
        unsafe { pg_sys::pushJsonbValue(&mut self.state, token, ptr) };
    }

    fn key(&mut self, key: &str) {
        self.push(pg_sys::JsonbIteratorToken::WJB_KEY, Some(pstring(key)));
    }

    pub fn string(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        let v = value.map_or_else(null_value, pstring);
        self.push(pg_sys::JsonbIteratorToken::WJB_VALUE, Some(v));
    }

    pub fn strings(&mut self, key: &str, values: Option<&[String]>) {
        let Some(values) = values else {
            return self.string(key, None);
        };
        self.key(key);
        self.push(pg_sys::JsonbIteratorToken::WJB_BEGIN_ARRAY, None);
        for v in values {
            self.push(pg_sys::JsonbIteratorToken::WJB_ELEM, Some(pstring(v)));
        }
        self.push(pg_sys::JsonbIteratorToken::WJB_END_ARRAY, None);
    }

    /// A value given as a jsonb root container (such as a decrypted one).  The caller vouches
    /// that the bytes are a container PostgreSQL wrote (the vault: its AEAD tag does).
    pub fn container(&mut self, key: &str, container: &[u8]) {
        self.key(key);
        // SAFETY: a palloc'd, suitably aligned copy of the container, as a varlena would hold it.
        unsafe {
            let copy = pg_sys::palloc(container.len()) as *mut u8;
            std::ptr::copy_nonoverlapping(container.as_ptr(), copy, container.len());
            let mut v = pg_sys::JsonbValue {
                type_: pg_sys::jbvType::jbvBinary,
                val: std::mem::zeroed(),
            };
            v.val.binary.len = container.len() as i32;
            v.val.binary.data = copy.cast();
            self.push(pg_sys::JsonbIteratorToken::WJB_VALUE, Some(v));
        }
    }

    pub fn finish(mut self) -> JsonbDatum {
        let mut value = std::ptr::null_mut();
        // SAFETY: closes the object pushJsonbValue opened; JsonbValueToJsonb pallocs the result.
        unsafe {
            let state = &mut self.state;
            value =
                pg_sys::pushJsonbValue(state, pg_sys::JsonbIteratorToken::WJB_END_OBJECT, value);
            JsonbDatum(pg_sys::Datum::from(pg_sys::JsonbValueToJsonb(value)))
        }
    }
}

impl Default for ObjectBuilder {
    fn default() -> Self {
        ObjectBuilder::new()
    }
}

#[cfg(test)]
mod unit_tests {
    #[test]
    fn container_kinds() {
        let header = |h: u32| h.to_ne_bytes().to_vec();
        assert!(super::container_is_object(&header(0x2000_0001)));
        assert!(!super::container_is_object(&header(0x4000_0001)));
        assert!(!super::container_is_object(&header(0x5000_0001)));
        assert!(!super::container_is_object(&[]));
    }
}
