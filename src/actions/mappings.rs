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
use super::document::{finish, place, read, root, Out};
use super::lists::{self, DirectionArg};
use super::paths::{self, Path, Step};
use super::ticking::{tick, with_budget, Budget};
use super::transforms::{self, Transform, Val};
use crate::error::raise;
use crate::jsonb::{JsonbArg, JsonbDatum};
use pgrx::prelude::*;
use std::cell::RefCell;
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

/// A compiled mapping.
#[derive(Debug)]
pub struct Mapping {
    source: Path,
    target: Path,
    source_text: String,
    pub(super) target_text: String,
    transform: Transform,
}

/// Why a mapping cannot be written: the column and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct MappingError {
    pub column: &'static str,
    pub message: String,
}

/// A mapping as compiled from a row: shared by the rows with the same text and the lists that
/// name it ([`super::lists`]); a row written before mappings were checked may not compile.
pub type Compiled = Rc<Result<Mapping, MappingError>>;

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
        transform: transforms::parse(config).map_err(|m| bad("transform_config", m))?,
    })
}

thread_local! {
    static CACHE: RefCell<CompiledCache<Result<Mapping, MappingError>>> =
        RefCell::new(CompiledCache::new(MAX_ENTRIES, MAX_BYTES));
}

/// The compiled mapping of a row, from the cache or compiled now.
/// The compiled mapping of a row, from the cache or compiled now, and what it weighs: its key
/// and what compiling it held on Rust's heap.
pub(super) fn compiled(
    source: &[u8],
    target: &[u8],
    config: Option<&JsonbArg>,
) -> (Compiled, usize) {
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
    if let Some(hit) = CACHE.with_borrow_mut(|c| c.get_weighed(&key)) {
        return hit;
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
    (mapping, key.len().saturating_add(held))
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
    match &*compiled(source.as_bytes(), target.as_bytes(), transform_config.as_ref()).0 {
        Ok(_) => true,
        Err(e) => raise(
            PgSqlErrorCode::ERRCODE_CHECK_VIOLATION,
            format!("field mapping: {e}"),
            Some("Paths: $.a.b, $.a[0], $[\"a b\"], $.items[*].sku; transform_config keys: default, type (string, number, integer, boolean), map, case (lower, upper), trim."),
        ),
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
fn apply(mappings: &[Compiled], payload: &JsonbArg) -> Out {
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
// The SQL function.
// ---------------------------------------------------------------------------------------------

/// The document `payload` maps to through the action's field mappings of `direction`.
#[pg_extern(stable, strict, parallel_restricted, requires = ["schema"])]
fn apply_field_mappings(
    action_id: pgrx::Uuid,
    direction: DirectionArg,
    payload: JsonbArg,
    fcinfo: pg_sys::FunctionCallInfo,
) -> JsonbDatum {
    let mappings = lists::of(fcinfo, action_id, &direction);
    with_budget(&MAPPING, || finish(&apply(&mappings, &payload)))
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
}
