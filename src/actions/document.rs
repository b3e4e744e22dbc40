//! The payload read in place (PostgreSQL's jsonb functions, no text) and the mapped document
//! built: placed value by value ([`place`]) into a tree, then written with PostgreSQL's jsonb
//! builder ([`finish`]).  Every step counts towards the mapping's budget and an interrupt check
//! ([`super::ticking`]).
use super::paths::Step;
use super::ticking::{tick, tick_n};
use super::transforms::{numeric_of, Val};
use crate::jsonb::{
    null_value, pstring, JsonbArg, JsonbDatum, JB_CMASK, JB_FARRAY, JB_FOBJECT, JB_FSCALAR,
};
use pgrx::prelude::*;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// Reading the payload in place (PostgreSQL's jsonb functions) and building the result.
// ---------------------------------------------------------------------------------------------

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
pub(super) fn root(payload: &JsonbArg) -> pg_sys::JsonbValue {
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
pub(super) fn member(v: &pg_sys::JsonbValue, key: &str) -> Option<pg_sys::JsonbValue> {
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
pub(super) fn elements(v: &pg_sys::JsonbValue) -> Option<(*mut pg_sys::JsonbContainer, u32)> {
    let (c, header) = container_of(v)?;
    (header & JB_FARRAY != 0 && header & JB_FSCALAR == 0).then_some((c, header & JB_CMASK))
}

/// # Safety
/// `c` must be an array container.
pub(super) unsafe fn element(c: *mut pg_sys::JsonbContainer, i: u32) -> Option<pg_sys::JsonbValue> {
    // SAFETY: the caller's; the result is palloc'd (freed with the call's memory context).
    unsafe {
        let p = pg_sys::getIthJsonbValueFromContainer(c, i);
        (!p.is_null()).then(|| *p)
    }
}

/// The document being built.
pub(super) enum Out {
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
        Val::Src(j) if j.type_ == pg_sys::jbvType::jbvBinary => {
            // SAFETY: the union member of the value's type.
            unsafe { j.val.binary.len as usize }
        }
        Val::Src(j) if j.type_ == pg_sys::jbvType::jbvString => {
            // SAFETY: the union member of the value's type.
            unsafe { j.val.string.len as usize }
        }
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
pub(super) fn place(node: &mut Out, steps: &[Step], indexes: &[u32], v: Val) -> Result<(), ()> {
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
pub(super) fn read(
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
            let nth = |(c, n)| {
                // SAFETY: `elements` returned an array container of `n` elements, and i < n.
                (*i < n).then(|| unsafe { element(c, *i) }).flatten()
            };
            match elements(v).and_then(nth) {
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
            serde_json::Value::String(s) => self.push(token, Some(pstring(s))),
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
                    self.push(WJB_KEY, Some(pstring(k)));
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
                    self.push(WJB_KEY, Some(pstring(k)));
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
            Out::Leaf(Val::Str(s)) => self.push(token, Some(pstring(s))),
            Out::Leaf(Val::Num(n)) => self.push(token, Some(Self::number(n))),
            Out::Leaf(Val::Bool(b)) => self.push(token, Some(Self::boolean(*b))),
        }
    }
}

/// The jsonb of a built document (`{}` when nothing was written).
pub(super) fn finish(out: &Out) -> JsonbDatum {
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
