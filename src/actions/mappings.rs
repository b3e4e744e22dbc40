//! Field mappings: `tenancy.apply_field_mappings(action_id, direction, payload)` builds the
//! mapped document from an action's mappings of one direction, in the database.
//!
//! * Paths are the JSONPath subset of [`super::paths`]: `$.a.b`, `$.a[0]`, `$["a b"]`, and
//!   `$.items[*].sku` → `$.lines[*].code` to map over arrays.  Targets are created as needed
//!   (objects for names, arrays padded with nulls for indexes).
//! * `transform_config` (an object, every key optional) is applied in this order:
//!   `default` (when the source is absent or null), `trim` (strings), `case` (`lower`/`upper`,
//!   strings), `map` (`{"<from>": <to>}`: a string by its text, a number by its text as written,
//!   `true`/`false`/`null`; a value not in the map passes unchanged), `type` (`string`,
//!   `number`, `integer`, `boolean`: a cast, 22023 when the value does not cast; null stays
//!   null).  A source that is absent, with no default, writes nothing.
//! * A mapping is checked when it is written (CHECK constraint, 23514: a bad path, a target
//!   with a different number of `[*]` than its source, an unknown transform), compiled once
//!   per backend ([`super::cache`], keyed by its text), and the mappings are applied in one
//!   pass over them, in the order of their target paths.
//! * Values are read from the payload's jsonb in place and written with PostgreSQL's jsonb
//!   builder: numbers keep every digit, and no JSON text is printed or parsed.
//! * The action and its mappings are those of the current context's tenant (an action id is
//!   unique within a tenant only: two tenants may use the same one), read as the caller reads
//!   them (SPI, RLS applies): another tenant's action, or none, or no context, is "not found"
//!   (P0002).  service_role enters the tenant first (`tenancy.set_tenant`).  An action without mappings of
//!   that direction maps every payload to `{}`.
//! * Errors name the mapping and the place in the payload, never a value.
use super::cache::CompiledCache;
use super::paths::{self, Path, Step};
use super::ticking::{tick, tick_n, with_budget, Budget};
use crate::error::raise;
use crate::jsonb::{JsonbArg, JsonbDatum};
use crate::lookup::KeptStatement;
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::prelude::*;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// Applying an action's mappings to one payload: the steps (values read and written, a copied
/// container weighing a step per 4 bytes) and the Rust memory of the document being built.
/// One small payload could otherwise make gigabytes: a target `$.b[*][9999][9999]...` pads
/// 10,000 nulls at every index.
pub const MAPPING: Budget = Budget {
    steps: 10_000_000,
    bytes: 256 << 20,
    what: "the mapped document",
    hint: "Targets with large indexes pad arrays with nulls; every [*] element and every use of a default counts.",
};

/// Compiled mappings kept per backend.
pub const MAX_ENTRIES: usize = 4096;
/// Bytes of mapping text (paths and transform configs) kept per backend.
pub const MAX_BYTES: usize = 4 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Lower,
    Upper,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cast {
    String,
    Number,
    Integer,
    Boolean,
}

impl Cast {
    fn name(self) -> &'static str {
        match self {
            Cast::String => "string",
            Cast::Number => "number",
            Cast::Integer => "integer",
            Cast::Boolean => "boolean",
        }
    }
}

/// A compiled `transform_config`.
#[derive(Debug, Default)]
struct Transform {
    default: Option<serde_json::Value>,
    trim: bool,
    case: Option<Case>,
    map: Option<HashMap<String, serde_json::Value>>,
    cast: Option<Cast>,
}

/// A compiled mapping.
#[derive(Debug)]
pub struct Mapping {
    source: Path,
    target: Path,
    source_text: String,
    target_text: String,
    transform: Transform,
}

/// Why a mapping cannot be written: the column and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct MappingError {
    pub column: &'static str,
    pub message: String,
}

impl std::fmt::Display for MappingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.column, self.message)
    }
}

fn bad(column: &'static str, message: impl Into<String>) -> MappingError {
    MappingError {
        column,
        message: message.into(),
    }
}

const KNOWN: &str = "default, type, map, case, trim";

fn transform(config: Option<&serde_json::Value>) -> Result<Transform, MappingError> {
    let mut t = Transform::default();
    let Some(config) = config else {
        return Ok(t);
    };
    let Some(config) = config.as_object() else {
        return Err(bad("transform_config", "must be an object"));
    };
    for (key, value) in config {
        match key.as_str() {
            "default" => t.default = Some(value.clone()),
            "trim" => {
                t.trim = value
                    .as_bool()
                    .ok_or_else(|| bad("transform_config", "\"trim\" takes true or false"))?
            }
            "case" => {
                t.case = Some(match value.as_str() {
                    Some("lower") => Case::Lower,
                    Some("upper") => Case::Upper,
                    _ => {
                        return Err(bad(
                            "transform_config",
                            "\"case\" takes \"lower\" or \"upper\"",
                        ))
                    }
                })
            }
            "type" => {
                t.cast = Some(match value.as_str() {
                    Some("string") => Cast::String,
                    Some("number") => Cast::Number,
                    Some("integer") => Cast::Integer,
                    Some("boolean") => Cast::Boolean,
                    _ => {
                        return Err(bad(
                            "transform_config",
                            "\"type\" takes \"string\", \"number\", \"integer\" or \"boolean\"",
                        ))
                    }
                })
            }
            "map" => {
                let Some(m) = value.as_object() else {
                    return Err(bad(
                        "transform_config",
                        "\"map\" takes an object: {\"<from>\": <to>, ...}",
                    ));
                };
                t.map = Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
            }
            _ => {
                return Err(bad(
                    "transform_config",
                    format!(
                        "unknown transform {} (known: {KNOWN})",
                        serde_json::Value::from(key.as_str())
                    ),
                ))
            }
        }
    }
    Ok(t)
}

/// Compile a mapping: both paths, the number of `[*]` on each side, the transform.
pub fn compile(
    source: &str,
    target: &str,
    config: Option<&serde_json::Value>,
) -> Result<Mapping, MappingError> {
    let source_path = paths::parse(source)
        .map_err(|e| bad("source_path", format!("not a supported path {e}")))?;
    let target_path = paths::parse(target)
        .map_err(|e| bad("target_path", format!("not a supported path {e}")))?;
    if target_path.steps.is_empty() {
        return Err(bad(
            "target_path",
            "$ alone would replace the whole document: name a member or an element",
        ));
    }
    let (s, t) = (source_path.wildcards(), target_path.wildcards());
    if s != t {
        return Err(bad(
            "target_path",
            format!("has {t} [*] and source_path has {s}: the n-th [*] of the target takes the index of the n-th [*] of the source"),
        ));
    }
    Ok(Mapping {
        source: source_path,
        target: target_path,
        source_text: source.to_string(),
        target_text: target.to_string(),
        transform: transform(config)?,
    })
}

thread_local! {
    static CACHE: RefCell<CompiledCache<Result<Mapping, MappingError>>> =
        RefCell::new(CompiledCache::new(MAX_ENTRIES, MAX_BYTES));
}

/// The compiled mapping of a row, from the cache or compiled now.
fn compiled(
    source: &[u8],
    target: &[u8],
    config: Option<&JsonbArg>,
) -> Rc<Result<Mapping, MappingError>> {
    // The key: both texts as stored, NUL-separated (a path holds no NUL: text cannot), then the
    // config's jsonb bytes.  A hit copies nothing to a String.
    let mut key = Vec::with_capacity(
        source.len() + target.len() + 2 + config.map_or(0, |c| c.container().len()),
    );
    key.extend_from_slice(source);
    key.push(0);
    key.extend_from_slice(target);
    key.push(0);
    if let Some(c) = config {
        key.extend_from_slice(c.container());
    }
    if let Some(m) = CACHE.with_borrow_mut(|c| c.get(&key)) {
        return m;
    }
    let held = crate::alloc::held();
    let (source, target) = (
        String::from_utf8_lossy(source),
        String::from_utf8_lossy(target),
    );
    let value = config.map(|c| c.to_value());
    let mapping = Rc::new(match value {
        Some(None) => Err(bad(
            "transform_config",
            "cannot be read: it holds a number outside the range of a double, or is nested more than 128 levels deep",
        )),
        Some(Some(v)) => compile(&source, &target, Some(&v)),
        None => compile(&source, &target, None),
    });
    let held = usize::try_from(crate::alloc::held() - held).unwrap_or(0);
    CACHE.with_borrow_mut(|c| c.insert(&key, mapping.clone(), held));
    mapping
}

/// For `tenancy.library_info()`: this backend's compiled mappings.
pub fn cache_info() -> serde_json::Value {
    CACHE.with_borrow(CompiledCache::info)
}

/// The CHECK of `field_mappings`: true, or 23514 naming the column and what is wrong.
#[pg_extern(immutable, parallel_safe)]
fn _field_mapping_check(
    source_path: Option<&str>,
    target_path: Option<&str>,
    transform_config: Option<JsonbArg>,
) -> bool {
    let (Some(source), Some(target)) = (source_path, target_path) else {
        return true; // NOT NULL decides.
    };
    match &*compiled(source.as_bytes(), target.as_bytes(), transform_config.as_ref()) {
        Ok(_) => true,
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
            format!("field mapping: {e}"),
            Some("Paths: $.a.b, $.a[0], $[\"a b\"], $.items[*].sku; transform_config keys: default, type (string, number, integer, boolean), map, case (lower, upper), trim."),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the payload in place (PostgreSQL's jsonb functions) and building the result.
// ---------------------------------------------------------------------------------------------

const JB_CMASK: u32 = 0x0FFF_FFFF;
const JB_FSCALAR: u32 = 0x1000_0000;
const JB_FOBJECT: u32 = 0x2000_0000;
const JB_FARRAY: u32 = 0x4000_0000;

fn null_value() -> pg_sys::JsonbValue {
    pg_sys::JsonbValue {
        type_: pg_sys::jbvType::jbvNull,
        // SAFETY: an all-zero union is a valid (unused) payload for jbvNull.
        val: unsafe { std::mem::zeroed() },
    }
}

/// The header of the container a binary value points at, or `None` for a scalar value.
fn container_of(v: &pg_sys::JsonbValue) -> Option<(*mut pg_sys::JsonbContainer, u32)> {
    if v.type_ != pg_sys::jbvType::jbvBinary {
        return None;
    }
    // SAFETY: a jbvBinary value points at a container inside the payload (or the payload's root),
    // whose first 4 bytes are its header.
    unsafe {
        let c = v.val.binary.data;
        Some((c, std::ptr::read_unaligned(c as *const u32)))
    }
}

/// The root value of a payload: its container, or the scalar a scalar jsonb holds.
fn root(payload: &JsonbArg) -> pg_sys::JsonbValue {
    let bytes = payload.container();
    let c = bytes.as_ptr() as *mut pg_sys::JsonbContainer;
    let header = u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if header & JB_FSCALAR != 0 {
        // SAFETY: a scalar jsonb is a one-element array container.
        return unsafe { element(c, 0) }.unwrap_or_else(null_value);
    }
    let mut v = null_value();
    v.type_ = pg_sys::jbvType::jbvBinary;
    v.val.binary.data = c;
    v.val.binary.len = bytes.len() as i32;
    v
}

/// The member `key` of an object value.
fn member(v: &pg_sys::JsonbValue, key: &str) -> Option<pg_sys::JsonbValue> {
    let (c, header) = container_of(v)?;
    if header & JB_FOBJECT == 0 {
        return None;
    }
    let mut out = null_value();
    // SAFETY: an object container; the result points into it (or is a scalar copy in `out`).
    let found = unsafe {
        pg_sys::getKeyJsonValueFromContainer(c, key.as_ptr().cast(), key.len() as i32, &mut out)
    };
    (!found.is_null()).then_some(out)
}

/// An array value's container and length.
fn elements(v: &pg_sys::JsonbValue) -> Option<(*mut pg_sys::JsonbContainer, u32)> {
    let (c, header) = container_of(v)?;
    (header & JB_FARRAY != 0 && header & JB_FSCALAR == 0).then_some((c, header & JB_CMASK))
}

/// # Safety
/// `c` must be an array container.
unsafe fn element(c: *mut pg_sys::JsonbContainer, i: u32) -> Option<pg_sys::JsonbValue> {
    // SAFETY: the caller's; the result is palloc'd (freed with the call's memory context).
    unsafe {
        let p = pg_sys::getIthJsonbValueFromContainer(c, i);
        (!p.is_null()).then(|| *p)
    }
}

/// A value being written: read from the payload, given by a transform config, or made by a
/// transform.
#[derive(Clone)]
enum Val {
    Src(pg_sys::JsonbValue),
    Json(serde_json::Value),
    Str(String),
    /// A number's text, as `numeric_in` reads it.
    Num(String),
    Bool(bool),
}

/// A scalar's view of a value, for the transforms.
enum Scalar<'a> {
    Null,
    Bool(bool),
    Str(Cow<'a, str>),
    Num(Cow<'a, str>),
    Container,
}

fn numeric_text(n: pg_sys::Numeric) -> String {
    // SAFETY: numeric_out of a valid numeric returns a palloc'd C string.
    unsafe {
        pgrx::direct_function_call_as_datum(pg_sys::numeric_out, &[Some(pg_sys::Datum::from(n))])
            .map(|d| {
                std::ffi::CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>())
                    .to_string_lossy()
                    .into_owned()
            })
            .unwrap_or_default()
    }
}

/// A numeric from text already known to be a JSON number (22003 when out of numeric's range).
fn numeric_of(text: &str) -> pg_sys::Numeric {
    let c = std::ffi::CString::new(text).expect("a JSON number holds no NUL");
    // SAFETY: numeric_in of a NUL-terminated string (typmod -1); it raises on what it cannot
    // read, and never returns NULL.
    unsafe {
        pgrx::direct_function_call_as_datum(
            pg_sys::numeric_in,
            &[
                Some(pg_sys::Datum::from(c.as_ptr())),
                Some(pg_sys::Datum::from(pg_sys::InvalidOid)),
                Some(pg_sys::Datum::from(-1i32)),
            ],
        )
        .expect("numeric_in returns a value")
        .cast_mut_ptr()
    }
}

/// Whether `s` is a JSON number (the crate's parser checks the syntax; no value is made).
fn is_json_number(s: &str) -> bool {
    matches!(s.as_bytes().first(), Some(b'-' | b'0'..=b'9'))
        && serde_json::from_str::<&serde_json::value::RawValue>(s).is_ok()
}

impl Val {
    fn scalar(&self) -> Scalar<'_> {
        match self {
            Val::Src(v) => match v.type_ {
                pg_sys::jbvType::jbvNull => Scalar::Null,
                // SAFETY: the union member of the value's type.
                pg_sys::jbvType::jbvBool => Scalar::Bool(unsafe { v.val.boolean }),
                pg_sys::jbvType::jbvString => Scalar::Str(unsafe {
                    let s = std::slice::from_raw_parts(
                        v.val.string.val as *const u8,
                        v.val.string.len as usize,
                    );
                    String::from_utf8_lossy(s)
                }),
                pg_sys::jbvType::jbvNumeric => {
                    Scalar::Num(Cow::Owned(numeric_text(unsafe { v.val.numeric })))
                }
                _ => Scalar::Container,
            },
            Val::Json(j) => match j {
                serde_json::Value::Null => Scalar::Null,
                serde_json::Value::Bool(b) => Scalar::Bool(*b),
                serde_json::Value::String(s) => Scalar::Str(Cow::Borrowed(s)),
                serde_json::Value::Number(n) => Scalar::Num(Cow::Owned(n.to_string())),
                _ => Scalar::Container,
            },
            Val::Str(s) => Scalar::Str(Cow::Borrowed(s)),
            Val::Num(n) => Scalar::Num(Cow::Borrowed(n)),
            Val::Bool(b) => Scalar::Bool(*b),
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.scalar_kind(), Kind::Null)
    }

    /// The kind without making text (the fast path when no transform applies).
    fn scalar_kind(&self) -> Kind {
        match self {
            Val::Src(v) if v.type_ == pg_sys::jbvType::jbvNull => Kind::Null,
            Val::Json(serde_json::Value::Null) => Kind::Null,
            _ => Kind::Other,
        }
    }
}

enum Kind {
    Null,
    Other,
}

/// An integer's canonical text, or `None` for a number with a fraction.
fn integral(number_text: &str) -> Option<String> {
    let n = numeric_of(number_text);
    // SAFETY: numeric_normalize prints a valid numeric without trailing fractional zeros.
    let s = unsafe {
        let p = pg_sys::numeric_normalize(n);
        std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
    };
    (!s.contains('.')).then_some(s)
}

impl Transform {
    fn is_identity(&self) -> bool {
        !self.trim && self.case.is_none() && self.map.is_none() && self.cast.is_none()
    }

    /// The transformed value, or `Err(cast)` when it does not cast.
    fn apply(&self, v: Val) -> Result<Val, Cast> {
        if self.is_identity() {
            return Ok(v);
        }
        let mut v = v;
        if self.trim {
            if let Scalar::Str(s) = v.scalar() {
                let t = s.trim();
                if t.len() != s.len() {
                    v = Val::Str(t.to_string());
                }
            }
        }
        if let Some(case) = self.case {
            if let Scalar::Str(s) = v.scalar() {
                v = Val::Str(match case {
                    Case::Lower => s.to_lowercase(),
                    Case::Upper => s.to_uppercase(),
                });
            }
        }
        if let Some(map) = &self.map {
            let to = match v.scalar() {
                Scalar::Str(s) => map.get(s.as_ref()),
                Scalar::Num(n) => map.get(n.as_ref()),
                Scalar::Bool(b) => map.get(if b { "true" } else { "false" }),
                Scalar::Null => map.get("null"),
                Scalar::Container => None,
            };
            if let Some(to) = to {
                v = Val::Json(to.clone());
            }
        }
        let Some(cast) = self.cast else {
            return Ok(v);
        };
        let out = match (cast, v.scalar()) {
            (_, Scalar::Null) => return Ok(v),
            (_, Scalar::Container) => None,
            (Cast::String, Scalar::Str(_)) => return Ok(v),
            (Cast::String, Scalar::Num(n)) => Some(Val::Str(n.into_owned())),
            (Cast::String, Scalar::Bool(b)) => Some(Val::Str(b.to_string())),
            (Cast::Number, Scalar::Num(_)) => return Ok(v),
            (Cast::Number, Scalar::Str(s)) => {
                let t = s.trim();
                is_json_number(t).then(|| Val::Num(t.to_string()))
            }
            (Cast::Number | Cast::Integer, Scalar::Bool(_)) => None,
            (Cast::Integer, Scalar::Num(n)) => integral(&n).map(Val::Num),
            (Cast::Integer, Scalar::Str(s)) => {
                let t = s.trim();
                if is_json_number(t) {
                    integral(t).map(Val::Num)
                } else {
                    None
                }
            }
            (Cast::Boolean, Scalar::Bool(_)) => return Ok(v),
            (Cast::Boolean, Scalar::Str(s)) => match s.trim().to_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "on" | "1" => Some(Val::Bool(true)),
                "false" | "f" | "no" | "n" | "off" | "0" => Some(Val::Bool(false)),
                _ => None,
            },
            (Cast::Boolean, Scalar::Num(n)) => match integral(&n).as_deref() {
                Some("1") => Some(Val::Bool(true)),
                Some("0") => Some(Val::Bool(false)),
                _ => None,
            },
        };
        out.ok_or(cast)
    }
}

/// The document being built.
enum Out {
    /// Nothing written here yet (an array's padding is null).
    Hole,
    Obj(BTreeMap<String, Out>),
    Arr(Vec<Out>),
    Leaf(Val),
}

/// What writing `v` costs in [`MAPPING`]'s steps: a step, and one per 4 bytes of a container or
/// string it copies (PostgreSQL's jsonb builder expands a copied container in its own memory,
/// which the Rust budget does not see: 150 copies of a 1 MB array of nulls made 1.4 GB).
fn weight(v: &Val) -> u32 {
    let bytes = match v {
        // SAFETY: the union member of the value's type.
        Val::Src(j) if j.type_ == pg_sys::jbvType::jbvBinary => unsafe {
            j.val.binary.len as usize
        },
        Val::Src(j) if j.type_ == pg_sys::jbvType::jbvString => unsafe {
            j.val.string.len as usize
        },
        Val::Json(j) => json_bytes(j),
        Val::Str(s) | Val::Num(s) => s.len(),
        _ => 0,
    };
    1 + u32::try_from(bytes / 4).unwrap_or(u32::MAX / 2)
}

/// About how many bytes a JSON value takes (for [`weight`]; computed when a config is compiled).
fn json_bytes(j: &serde_json::Value) -> usize {
    match j {
        serde_json::Value::String(s) => s.len() + 2,
        serde_json::Value::Array(a) => a.iter().map(json_bytes).sum::<usize>() + 2,
        serde_json::Value::Object(o) => {
            o.iter()
                .map(|(k, v)| k.len() + 4 + json_bytes(v))
                .sum::<usize>()
                + 2
        }
        _ => 8,
    }
}

/// Write `v` at `steps` (the n-th `[*]` taking `indexes[n]`); `Err(())` when an earlier
/// mapping already wrote there, or a value of another kind is in the way.
fn place(node: &mut Out, steps: &[Step], indexes: &[u32], v: Val) -> Result<(), ()> {
    tick();
    let Some((first, rest)) = steps.split_first() else {
        return match node {
            Out::Hole => {
                tick_n(weight(&v));
                *node = Out::Leaf(v);
                Ok(())
            }
            _ => Err(()),
        };
    };
    match first {
        Step::Key(k) => {
            if let Out::Hole = node {
                *node = Out::Obj(BTreeMap::new());
            }
            let Out::Obj(members) = node else {
                return Err(());
            };
            // Looked up before inserting: no copy of the name when it is already there.
            if !members.contains_key(k) {
                members.insert(k.clone(), Out::Hole);
            }
            let child = members.get_mut(k).expect("inserted just above");
            place(child, rest, indexes, v)
        }
        Step::Index(_) | Step::Each => {
            let (i, indexes) = match first {
                Step::Index(i) => (*i, indexes),
                _ => (indexes[0], &indexes[1..]),
            };
            if let Out::Hole = node {
                *node = Out::Arr(Vec::new());
            }
            let Out::Arr(elements) = node else {
                return Err(());
            };
            let i = i as usize;
            if elements.len() <= i {
                tick_n(u32::try_from(i + 1 - elements.len()).unwrap_or(u32::MAX / 2));
                elements.resize_with(i + 1, || Out::Hole);
            }
            place(&mut elements[i], rest, indexes, v)
        }
    }
}

/// Read `steps` from `v`, calling `found` with each value reached (or `None` where the path
/// ends at a missing member or element) and the indexes its `[*]` took.
fn read(
    v: &pg_sys::JsonbValue,
    steps: &[Step],
    indexes: &mut Vec<u32>,
    found: &mut dyn FnMut(Option<pg_sys::JsonbValue>, &[u32]),
) {
    let Some((first, rest)) = steps.split_first() else {
        return found(Some(*v), indexes);
    };
    // A missing value under a [*] not reached yet has no place to go.
    let missing = |found: &mut dyn FnMut(Option<pg_sys::JsonbValue>, &[u32]), indexes: &[u32]| {
        if !rest.contains(&Step::Each) {
            found(None, indexes)
        }
    };
    match first {
        Step::Key(k) => match member(v, k) {
            Some(m) => read(&m, rest, indexes, found),
            None => missing(found, indexes),
        },
        Step::Index(i) => {
            // SAFETY: `elements` returned an array container.
            match elements(v)
                .and_then(|(c, n)| (*i < n).then(|| unsafe { element(c, *i) }).flatten())
            {
                Some(e) => read(&e, rest, indexes, found),
                None => missing(found, indexes),
            }
        }
        Step::Each => {
            let Some((c, n)) = elements(v) else {
                return;
            };
            for i in 0..n {
                tick();
                // SAFETY: `elements` returned an array container of `n` elements.
                let Some(e) = (unsafe { element(c, i) }) else {
                    continue;
                };
                indexes.push(i);
                read(&e, rest, indexes, found);
                indexes.pop();
            }
        }
    }
}

/// The source path with its `[*]` replaced by the indexes taken, for an error message.
fn concrete(path: &Path, indexes: &[u32]) -> String {
    let mut out = String::from("$");
    let mut k = 0;
    for s in &path.steps {
        match s {
            Step::Key(name) => {
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                {
                    out.push('.');
                    out.push_str(name);
                } else {
                    out.push('[');
                    out.push_str(&serde_json::Value::from(name.as_str()).to_string());
                    out.push(']');
                }
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Each => {
                out.push_str(&format!("[{}]", indexes.get(k).copied().unwrap_or(0)));
                k += 1;
            }
        }
    }
    out
}

/// Apply compiled mappings to a payload.
fn apply(mappings: &[Rc<Result<Mapping, MappingError>>], payload: &JsonbArg) -> Out {
    let root_value = root(payload);
    let mut out = Out::Hole;
    let mut indexes = Vec::new();
    for m in mappings {
        let m = match &**m {
            Ok(m) => m,
            Err(e) => raise(
                PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                format!("a field mapping of the action is not valid: {e}"),
                Some("It was written before the mappings were checked: correct or delete it."),
            ),
        };
        tick();
        read(
            &root_value,
            &m.source.steps,
            &mut indexes,
            &mut |value, idx| {
                let value = match value.map(Val::Src) {
                    Some(v) if !(v.is_null() && m.transform.default.is_some()) => v,
                    _ => match &m.transform.default {
                        Some(d) => Val::Json(d.clone()),
                        None => return,
                    },
                };
                let value = match m.transform.apply(value) {
                    Ok(v) => v,
                    Err(cast) => raise(
                        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                        format!(
                            "field mapping {} -> {}: the value at {} does not cast to {}",
                            m.source_text,
                            m.target_text,
                            concrete(&m.source, idx),
                            cast.name()
                        ),
                        None,
                    ),
                };
                if place(&mut out, &m.target.steps, idx, value).is_err() {
                    raise(
                    PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
                    format!(
                        "field mapping {} -> {}: an earlier mapping already wrote at or inside the target",
                        m.source_text, m.target_text
                    ),
                    Some("The targets of one action and direction must not overlap (such as $.a and $.a.b): mappings are applied in the order of their target paths."),
                )
                }
            },
        );
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Building the jsonb result.
// ---------------------------------------------------------------------------------------------

struct Builder {
    state: *mut pg_sys::JsonbParseState,
    last: *mut pg_sys::JsonbValue,
}

impl Builder {
    fn push(&mut self, token: pg_sys::JsonbIteratorToken::Type, value: Option<pg_sys::JsonbValue>) {
        let mut value = value;
        let ptr = value
            .as_mut()
            .map_or(std::ptr::null_mut(), |v| v as *mut pg_sys::JsonbValue);
        // SAFETY: the builder's own state; scalars point at palloc'd copies or into the payload,
        // which outlives the call's result; binary values are unpacked by pushJsonbValue.
        self.last = unsafe { pg_sys::pushJsonbValue(&mut self.state, token, ptr) };
    }

    fn string(s: &str) -> pg_sys::JsonbValue {
        let mut v = null_value();
        v.type_ = pg_sys::jbvType::jbvString;
        v.val.string.len = s.len() as i32;
        // SAFETY: pnstrdup copies the bytes into the current memory context.
        v.val.string.val = unsafe { pg_sys::pnstrdup(s.as_ptr().cast(), s.len()) };
        v
    }

    fn number(text: &str) -> pg_sys::JsonbValue {
        let mut v = null_value();
        v.type_ = pg_sys::jbvType::jbvNumeric;
        v.val.numeric = numeric_of(text);
        v
    }

    fn boolean(b: bool) -> pg_sys::JsonbValue {
        let mut v = null_value();
        v.type_ = pg_sys::jbvType::jbvBool;
        v.val.boolean = b;
        v
    }

    fn json(&mut self, j: &serde_json::Value, token: pg_sys::JsonbIteratorToken::Type) {
        use pg_sys::JsonbIteratorToken::*;
        match j {
            serde_json::Value::Null => self.push(token, Some(null_value())),
            serde_json::Value::Bool(b) => self.push(token, Some(Self::boolean(*b))),
            serde_json::Value::Number(n) => self.push(token, Some(Self::number(&n.to_string()))),
            serde_json::Value::String(s) => self.push(token, Some(Self::string(s))),
            serde_json::Value::Array(a) => {
                self.push(WJB_BEGIN_ARRAY, None);
                for e in a {
                    self.json(e, WJB_ELEM);
                }
                self.push(WJB_END_ARRAY, None);
            }
            serde_json::Value::Object(o) => {
                self.push(WJB_BEGIN_OBJECT, None);
                for (k, v) in o {
                    self.push(WJB_KEY, Some(Self::string(k)));
                    self.json(v, WJB_VALUE);
                }
                self.push(WJB_END_OBJECT, None);
            }
        }
    }

    fn out(&mut self, o: &Out, token: pg_sys::JsonbIteratorToken::Type) {
        use pg_sys::JsonbIteratorToken::*;
        tick();
        match o {
            Out::Hole => self.push(token, Some(null_value())),
            Out::Obj(members) => {
                self.push(WJB_BEGIN_OBJECT, None);
                for (k, v) in members {
                    self.push(WJB_KEY, Some(Self::string(k)));
                    self.out(v, WJB_VALUE);
                }
                self.push(WJB_END_OBJECT, None);
            }
            Out::Arr(elements) => {
                self.push(WJB_BEGIN_ARRAY, None);
                for e in elements {
                    self.out(e, WJB_ELEM);
                }
                self.push(WJB_END_ARRAY, None);
            }
            Out::Leaf(Val::Src(v)) => self.push(token, Some(*v)),
            Out::Leaf(Val::Json(j)) => self.json(j, token),
            Out::Leaf(Val::Str(s)) => self.push(token, Some(Self::string(s))),
            Out::Leaf(Val::Num(n)) => self.push(token, Some(Self::number(n))),
            Out::Leaf(Val::Bool(b)) => self.push(token, Some(Self::boolean(*b))),
        }
    }
}

/// The jsonb of a built document (`{}` when nothing was written).
fn finish(out: &Out) -> JsonbDatum {
    let mut b = Builder {
        state: std::ptr::null_mut(),
        last: std::ptr::null_mut(),
    };
    match out {
        Out::Obj(_) | Out::Arr(_) => b.out(out, pg_sys::JsonbIteratorToken::WJB_VALUE),
        _ => {
            b.push(pg_sys::JsonbIteratorToken::WJB_BEGIN_OBJECT, None);
            b.push(pg_sys::JsonbIteratorToken::WJB_END_OBJECT, None);
        }
    }
    // SAFETY: the last push closed the root container: `last` is the complete value.
    unsafe { JsonbDatum::from_value(b.last) }
}

// ---------------------------------------------------------------------------------------------
// The SQL function.
// ---------------------------------------------------------------------------------------------

/// A `tenancy.mapping_direction` argument.
pub struct DirectionArg(pub String);

impl FromDatum for DirectionArg {
    unsafe fn from_polymorphic_datum(
        d: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        (!is_null).then(|| DirectionArg(crate::lookup::enum_label(d)))
    }
}

// SAFETY: as pgrx's own argue_from_datum! impls.
unsafe impl<'fcx> ArgAbi<'fcx> for DirectionArg {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe {
            arg.unbox_arg_using_from_datum()
                .unwrap_or_else(|| panic!("argument {index} must not be null"))
        }
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        unsafe { arg.unbox_arg_using_from_datum().into() }
    }
}

pgrx::impl_sql_translatable!(DirectionArg, "tenancy.mapping_direction");

thread_local! {
    /// The action's mappings of a direction, as the caller reads them (RLS applies); sorted by
    /// target path here (one index scan, no sort or join in the executor: most of the call's
    /// time was there).
    static MAPPINGS: KeptStatement = const { KeptStatement::reading(
        "SELECT source_path, target_path, transform_config FROM tenancy.field_mappings \
          WHERE tenant_id OPERATOR(pg_catalog.=) tenancy.current_tenant_id() \
            AND action_id OPERATOR(pg_catalog.=) $1 \
            AND direction OPERATOR(pg_catalog.=) $2::tenancy.mapping_direction",
        &[pg_sys::UUIDOID, pg_sys::TEXTOID],
    ) };
    /// Whether the caller can see the action (asked only when it has no mappings to read).
    static ACTION: KeptStatement = const { KeptStatement::reading(
        "SELECT 1 FROM tenancy.actions WHERE tenant_id OPERATOR(pg_catalog.=) tenancy.current_tenant_id() \
           AND id OPERATOR(pg_catalog.=) $1",
        &[pg_sys::UUIDOID],
    ) };
}

/// The document `payload` maps to through the action's field mappings of `direction`.
#[pg_extern(stable, strict, parallel_restricted, requires = ["schema"])]
fn apply_field_mappings(
    action_id: pgrx::Uuid,
    direction: DirectionArg,
    payload: JsonbArg,
) -> JsonbDatum {
    let mut mappings = MAPPINGS.with(|m| {
        m.select(
            &[action_id.into(), direction.0.as_str().into()],
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
                    out.push(compiled(source, target, config.as_ref()));
                }
                Ok(out)
            },
        )
    });
    if mappings.is_empty()
        && !ACTION.with(|q| {
            q.select(&[action_id.into()], "reading the action", |rows| {
                Ok(!rows.is_empty())
            })
        })
    {
        raise(
            PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
            format!("action {action_id} not found"),
            Some("An action is found in the tenant of the current context only."),
        )
    }
    // The order of their target paths, byte by byte (a path is unique per action and direction).
    mappings.sort_by(|a, b| target_text(a).cmp(target_text(b)));
    with_budget(&MAPPING, || finish(&apply(&mappings, &payload)))
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

fn target_text(m: &Rc<Result<Mapping, MappingError>>) -> &[u8] {
    match &**m {
        Ok(m) => m.target_text.as_bytes(),
        Err(_) => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_checked_when_written() {
        assert!(compile("$.a", "$.b", None).is_ok());
        assert!(compile("$", "$.whole", None).is_ok());
        assert!(compile("$.items[*].sku", "$.lines[*].code", None).is_ok());
        let e = compile("$.a", "$", None).unwrap_err();
        assert_eq!(e.column, "target_path");
        let e = compile("$.items[*].sku", "$.sku", None).unwrap_err();
        assert_eq!(e.column, "target_path");
        assert!(e.message.contains("has 0 [*]"), "{}", e.message);
        let e = compile("a.b", "$.b", None).unwrap_err();
        assert_eq!(e.column, "source_path");
        assert!(e.message.contains("at character 1"), "{}", e.message);
        for (config, ok) in [
            (serde_json::json!({}), true),
            (serde_json::json!({"type": "integer", "default": 0}), true),
            (
                serde_json::json!({"map": {"a": 1}, "case": "upper", "trim": true}),
                true,
            ),
            (serde_json::json!({"type": "int"}), false),
            (serde_json::json!({"case": "title"}), false),
            (serde_json::json!({"trim": "yes"}), false),
            (serde_json::json!({"map": [1]}), false),
            (serde_json::json!({"uppercase": true}), false),
        ] {
            assert_eq!(compile("$.a", "$.b", Some(&config)).is_ok(), ok, "{config}");
        }
        let e = compile("$.a", "$.b", Some(&serde_json::json!({"regex": "x"}))).unwrap_err();
        assert!(
            e.message.contains("unknown transform \"regex\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn json_numbers_by_the_crate() {
        for (s, ok) in [
            ("1", true),
            ("-0.5e10", true),
            ("1e400", true),
            ("01", false),
            (".5", false),
            ("NaN", false),
            ("inf", false),
            ("1_000", false),
            ("\"1\"", false),
            ("", false),
            ("1 2", false),
        ] {
            assert_eq!(is_json_number(s), ok, "{s}");
        }
    }
}
