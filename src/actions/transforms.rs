//! The transforms of a field mapping (`transform_config`) and the values they work on: a value
//! read from the payload in place (a `JsonbValue`), given by a config, or made by a transform.
//! Applied in this order: `default`, `trim`, `case`, `map`, `type` (see docs/actions.md).
use pgrx::prelude::*;
use std::borrow::Cow;
use std::collections::HashMap;

fn fail(message: impl Into<String>) -> String {
    message.into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Case {
    Lower,
    Upper,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cast {
    String,
    Number,
    Integer,
    Boolean,
}

impl Cast {
    pub(super) fn name(self) -> &'static str {
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
pub(super) struct Transform {
    pub(super) default: Option<serde_json::Value>,
    trim: bool,
    case: Option<Case>,
    map: Option<HashMap<String, serde_json::Value>>,
    cast: Option<Cast>,
}

const KNOWN: &str = "default, type, map, case, trim";

/// Compile a `transform_config` (an object of known keys), or say what is wrong with it.
pub(super) fn parse(config: Option<&serde_json::Value>) -> Result<Transform, String> {
    let mut t = Transform::default();
    let Some(config) = config else {
        return Ok(t);
    };
    let Some(config) = config.as_object() else {
        return Err(fail("must be an object"));
    };
    for (key, value) in config {
        match key.as_str() {
            "default" => t.default = Some(value.clone()),
            "trim" => {
                t.trim = value
                    .as_bool()
                    .ok_or_else(|| fail("\"trim\" takes true or false"))?
            }
            "case" => {
                t.case = Some(match value.as_str() {
                    Some("lower") => Case::Lower,
                    Some("upper") => Case::Upper,
                    _ => return Err(fail("\"case\" takes \"lower\" or \"upper\"")),
                })
            }
            "type" => {
                t.cast = Some(match value.as_str() {
                    Some("string") => Cast::String,
                    Some("number") => Cast::Number,
                    Some("integer") => Cast::Integer,
                    Some("boolean") => Cast::Boolean,
                    _ => {
                        return Err(fail(
                            "\"type\" takes \"string\", \"number\", \"integer\" or \"boolean\"",
                        ))
                    }
                })
            }
            "map" => {
                let Some(m) = value.as_object() else {
                    return Err(fail("\"map\" takes an object: {\"<from>\": <to>, ...}"));
                };
                t.map = Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
            }
            _ => {
                return Err(fail(format!(
                    "unknown transform {} (known: {KNOWN})",
                    serde_json::Value::from(key.as_str())
                )))
            }
        }
    }
    Ok(t)
}

/// A value being written: read from the payload, given by a transform config, or made by a
/// transform.
#[derive(Clone)]
pub(super) enum Val {
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
pub(super) fn numeric_of(text: &str) -> pg_sys::Numeric {
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
pub(super) fn is_json_number(s: &str) -> bool {
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
                pg_sys::jbvType::jbvString => {
                    // SAFETY: the union member of the value's type: a pointer into the
                    // container (or a palloc'd copy) and its length, alive while `v` is.
                    let s = unsafe {
                        std::slice::from_raw_parts(
                            v.val.string.val as *const u8,
                            v.val.string.len as usize,
                        )
                    };
                    Scalar::Str(String::from_utf8_lossy(s))
                }
                pg_sys::jbvType::jbvNumeric => {
                    // SAFETY: the union member of the value's type.
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

    /// Whether it is a JSON null (without making text, unlike [`Val::scalar`]).
    pub(super) fn is_null(&self) -> bool {
        match self {
            Val::Src(v) => v.type_ == pg_sys::jbvType::jbvNull,
            Val::Json(j) => j.is_null(),
            _ => false,
        }
    }
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
    pub(super) fn apply(&self, v: Val) -> Result<Val, Cast> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
