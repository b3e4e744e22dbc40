//! JSON Schema in the database, with the `jsonschema` crate (what Supabase's pg_jsonschema wraps):
//! drafts 4, 6, 7, 2019-09 and 2020-12, chosen by `$schema` (2020-12 when absent).
//!
//! * `tenancy.jsonschema_is_valid(schema)`, `tenancy.jsonb_matches_schema(schema, instance)` and
//!   `tenancy.jsonschema_validation_errors(schema, instance)`, in pg_jsonschema's argument order.
//! * [`compile`]: a schema is checked against its draft's meta-schema before it is compiled, and
//!   its `pattern`s use the `regex` crate (linear time: no catastrophic backtracking on a
//!   pattern a tenant wrote), with no network or file access (`$ref` resolves inside the schema).
//! * Errors never quote the instance (they may hold secrets): the crate's masked messages, with
//!   the instance path, the schema path and the keyword.
//!
//! **The cache.**  Compiling costs far more than validating (bench/results.md: "actions").
//! Compiled validators are kept per backend, keyed by the schema's jsonb bytes
//! ([`super::cache`]), so any change of a schema is a new entry: an action's schema edited by
//! another session is picked up at the next call, with no invalidation to miss.  Bounded to
//! [`MAX_ENTRIES`] validators and [`MAX_BYTES`] held (the schemas and their compiled memory).
use super::ticking::Ticking;
use crate::jsonb::JsonbArg;
use jsonschema::{Draft, PatternOptions, ValidationError};

/// A compiled schema: validates jsonb in place, interruptibly ([`super::ticking`]).
pub struct Validator {
    inner: jsonschema::Validator<Ticking>,
    /// Distinct regular expressions: under them a string over [`ticking::MAX_MATCHED_STRING`]
    /// is refused, and the cache counts their match caches.
    patterns: usize,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Validator {{ patterns: {} }}", self.patterns)
    }
}

impl Validator {
    pub fn is_valid(&self, instance: super::ticking::TNode<'_>) -> bool {
        super::ticking::with_patterns(self.patterns > 0, || self.inner.is_valid(instance))
    }

    pub fn iter_errors<'i>(
        &'i self,
        instance: super::ticking::TNode<'i>,
    ) -> jsonschema::ErrorIterator<'i> {
        super::ticking::with_patterns(self.patterns > 0, || self.inner.iter_errors(instance))
    }
}
use super::cache::CompiledCache;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// The default of `tenancy.schema_cache_entries`.
pub const MAX_ENTRIES: usize = 256;
/// What the cached validators may hold, their schemas' bytes and their compiled memory.
pub const MAX_BYTES: usize = 64 << 20;

/// Why a schema is not one, for a message: where in the schema, which keyword, what.
#[derive(Debug, PartialEq, Eq)]
pub struct SchemaError {
    pub path: String,
    pub keyword: String,
    pub message: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{} at {at}: {}", self.keyword, self.message)
    }
}

/// The drafts we take, by their `$schema` URI.
fn draft_of(uri: &str) -> Option<Draft> {
    match uri.trim_end_matches('#') {
        "http://json-schema.org/draft-04/schema" => Some(Draft::Draft4),
        "http://json-schema.org/draft-06/schema" => Some(Draft::Draft6),
        "http://json-schema.org/draft-07/schema" => Some(Draft::Draft7),
        "https://json-schema.org/draft/2019-09/schema" => Some(Draft::Draft201909),
        "https://json-schema.org/draft/2020-12/schema" => Some(Draft::Draft202012),
        _ => None,
    }
}

fn schema_error(e: &ValidationError, fallback_keyword: &str) -> SchemaError {
    let keyword = e.kind().keyword();
    SchemaError {
        path: e.instance_path().as_str().to_string(),
        keyword: if keyword.is_empty() {
            fallback_keyword.to_string()
        } else {
            keyword.to_string()
        },
        message: e.masked().to_string(),
    }
}

/// The most subschemas a schema may hold once every reference is replaced by what it refers to
/// (see [`walk`]).  Compiling, and validating one instance node, cost about that much.
pub const MAX_EXPANDED: u64 = 20_000;
/// The deepest the expansion walk goes: subschemas nested in subschemas and references followed
/// from references.  A chain of 4,000 references overflowed the stack of the walk before.
pub const MAX_DEPTH: usize = 256;
/// The most distinct regular expressions a schema may hold, and how large each may compile (the
/// `regex` crate's limits: its program, and its lazy DFA's cache).  Compiling a regex cannot be
/// interrupted: 1,000 patterns of `(\w{60}){60}` took 18 s and 1 GB before these bounds; nor can
/// a match, which costs up to the program's size times the string's length (`([a-z]{60}){60}\W`,
/// 1 MB compiled, took 5.7 s over 200 kB; within 256 kB the worst we found took 0.14 ms a kB:
/// measured with the `regex` crate alone, release build),
/// and strings matched are at most [`super::ticking::MAX_MATCHED_STRING`]).  A validator's
/// lazy DFAs grow while it matches: the cache counts each regex at its DFA limit.
pub const MAX_PATTERNS: usize = 64;
pub const REGEX_SIZE_LIMIT: usize = 256 << 10;
pub const REGEX_DFA_SIZE_LIMIT: usize = 512 << 10;

/// The expanded size of `schema` (its subschemas, counted as the crate walks them for `draft`) with every
/// `$ref`, `$dynamicRef` and `$recursiveRef` counted as a copy of what it refers to, resolved by
/// the crate's own resolver; a dynamic reference counts every subschema that declares its
/// anchor; a reference back into its own chain (a cycle) counts once, as validation cuts it.
/// Stops counting past `limit`.  Also whether the walk went deeper than [`MAX_DEPTH`]
/// (references chained, or subschemas nested, that deep).
///
/// Why: a few hundred bytes of schema whose references fan out (two references a level to the
/// next level) make the `jsonschema` crate's compiling and validating exponential in the number
/// of levels (22 levels: 0.4 s to compile, 23 s to list the errors of `5`, ×2.2 a level), in
/// Rust code that no statement_timeout can stop.  Bounding this size before compiling bounds
/// both.
fn walk(schema: &serde_json::Value, draft: Draft, limit: u64) -> (u64, bool) {
    const BASE: &str = "urn:pg-tenancy:schema";
    let Ok(registry) = referencing::Registry::new()
        .draft(draft)
        .add(BASE, schema)
        .and_then(|b| b.prepare())
    else {
        // Not resolvable at all: the compiler refuses it without expanding anything.
        return (1, false);
    };
    let Ok(base) = referencing::uri::from_str(BASE) else {
        return (1, false);
    };
    let mut anchors: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    collect_anchors(schema, draft, &mut anchors);
    let mut walk = Walk {
        memo: HashMap::new(),
        stack: std::collections::HashSet::new(),
        anchors,
        limit,
        too_deep: false,
    };
    let size = walk.size(schema, draft, &registry.resolver(base));
    (size, walk.too_deep)
}

/// Where a `$schema` other than the root's appears inside the schema (any object, at any depth:
/// a `$ref` can reach a resource under any keyword), or `None`.  The walks here follow the root's
/// draft; a resource of another draft has keywords they would not see (draft 4's
/// `dependencies` inside a 2020-12 schema hid a chain of 20,000 references and crashed the server).
fn embedded_draft(schema: &serde_json::Value) -> Option<String> {
    fn scan(
        v: &serde_json::Value,
        at: &str,
        root_uri: Option<&serde_json::Value>,
        root: bool,
    ) -> Option<String> {
        match v {
            serde_json::Value::Object(o) => {
                if !root {
                    if let Some(uri) = o.get("$schema") {
                        let same = match (uri.as_str(), root_uri.and_then(|u| u.as_str())) {
                            (Some(u), Some(r)) => {
                                draft_of(u).is_some() && draft_of(u) == draft_of(r)
                            }
                            (Some(u), None) => draft_of(u) == Some(Draft::Draft202012),
                            _ => false,
                        };
                        if !same {
                            return Some(format!("{at}/$schema"));
                        }
                    }
                }
                o.iter().find_map(|(k, sub)| {
                    let escaped = k.replace('~', "~0").replace('/', "~1");
                    scan(sub, &format!("{at}/{escaped}"), root_uri, false)
                })
            }
            serde_json::Value::Array(a) => a
                .iter()
                .enumerate()
                .find_map(|(i, sub)| scan(sub, &format!("{at}/{i}"), root_uri, false)),
            _ => None,
        }
    }
    scan(schema, "", schema.get("$schema"), true)
}

/// The distinct regular expressions of a schema (`pattern` values, `patternProperties` names):
/// the crate compiles each once.
fn patterns<'a>(
    v: &'a serde_json::Value,
    draft: Draft,
    out: &mut std::collections::HashSet<&'a str>,
) {
    if let Some(o) = v.as_object() {
        if let Some(serde_json::Value::String(p)) = o.get("pattern") {
            out.insert(p);
        }
        if let Some(serde_json::Value::Object(p)) = o.get("patternProperties") {
            out.extend(p.keys().map(String::as_str));
        }
    }
    for sub in draft.subresources_of(v) {
        patterns(sub, draft, out);
    }
}

/// Every subschema declaring `$dynamicAnchor` (or 2019-09's `$recursiveAnchor: true`, under "").
fn collect_anchors<'a>(
    v: &'a serde_json::Value,
    draft: Draft,
    out: &mut HashMap<String, Vec<&'a serde_json::Value>>,
) {
    if let Some(o) = v.as_object() {
        if let Some(serde_json::Value::String(a)) = o.get("$dynamicAnchor") {
            out.entry(a.clone()).or_default().push(v);
        }
        if o.get("$recursiveAnchor") == Some(&serde_json::Value::Bool(true)) {
            out.entry(String::new()).or_default().push(v);
        }
    }
    for sub in draft.subresources_of(v) {
        collect_anchors(sub, draft, out);
    }
}

struct Walk<'s> {
    memo: HashMap<(usize, String), u64>,
    stack: std::collections::HashSet<(usize, String)>,
    anchors: HashMap<String, Vec<&'s serde_json::Value>>,
    limit: u64,
    too_deep: bool,
}

impl Walk<'_> {
    fn size(
        &mut self,
        v: &serde_json::Value,
        draft: Draft,
        resolver: &referencing::Resolver<'_>,
    ) -> u64 {
        // A chain of references is as deep as it is long: bounded, and the stack checked.
        #[cfg(not(test))]
        // SAFETY: compares the stack address with the backend's limit; raises an ERROR.
        unsafe {
            pgrx::pg_sys::check_stack_depth()
        };
        if self.stack.len() >= MAX_DEPTH {
            self.too_deep = true;
            return self.limit.saturating_add(1);
        }
        let key = (
            v as *const serde_json::Value as usize,
            resolver.base_uri().as_str().to_string(),
        );
        if let Some(n) = self.memo.get(&key) {
            return *n;
        }
        if !self.stack.insert(key.clone()) {
            return 1;
        }
        let mut n: u64 = 1;
        if let Some(o) = v.as_object() {
            if let Some(serde_json::Value::String(r)) = o.get("$ref") {
                if let Ok(resolved) = resolver.lookup(r) {
                    let (contents, inner, d) = resolved.into_inner();
                    n = n.saturating_add(self.size(contents, d, &inner));
                }
            }
            for (keyword, name) in [("$dynamicRef", None), ("$recursiveRef", Some(""))] {
                let Some(serde_json::Value::String(r)) = o.get(keyword) else {
                    continue;
                };
                if let Ok(resolved) = resolver.lookup(r) {
                    let (contents, inner, d) = resolved.into_inner();
                    n = n.saturating_add(self.size(contents, d, &inner));
                }
                let anchor = name.unwrap_or_else(|| r.rsplit_once('#').map_or("", |(_, a)| a));
                let targets = self.anchors.get(anchor).cloned().unwrap_or_default();
                for t in targets {
                    n = n.saturating_add(self.size(t, draft, resolver));
                    if n > self.limit {
                        break;
                    }
                }
            }
        }
        for sub in draft.subresources_of(v) {
            if n > self.limit {
                break;
            }
            let inner = resolver
                .in_subresource(referencing::ResourceRef::new(sub, draft))
                .unwrap_or_else(|_| resolver.clone());
            n = n.saturating_add(self.size(sub, draft, &inner));
        }
        self.stack.remove(&key);
        self.memo.insert(key, n);
        n
    }
}

/// Compile a schema: its draft from `$schema` (2020-12 when absent; another URI is refused),
/// checked against that draft's meta-schema, `pattern`s in linear time, references only inside
/// the schema.
pub fn compile(schema: &serde_json::Value) -> Result<Validator, SchemaError> {
    let draft = match schema.get("$schema") {
        None => Draft::Draft202012,
        Some(serde_json::Value::String(uri)) => draft_of(uri).ok_or_else(|| SchemaError {
            path: "/$schema".into(),
            keyword: "$schema".into(),
            message: "not a draft this function knows (drafts 4, 6, 7, 2019-09, 2020-12)".into(),
        })?,
        Some(_) => {
            return Err(SchemaError {
                path: "/$schema".into(),
                keyword: "$schema".into(),
                message: "not a string".into(),
            })
        }
    };
    if let Some(at) = embedded_draft(schema) {
        return Err(SchemaError {
            path: at,
            keyword: "$schema".into(),
            message: "a resource inside the schema of another draft than the schema's own: not supported (its keywords would escape the bounds checked here)".into(),
        });
    }
    let (size, too_deep) = walk(schema, draft, MAX_EXPANDED);
    if too_deep {
        return Err(SchemaError {
            path: String::new(),
            keyword: "$ref".into(),
            message: format!("its subschemas and references nest more than {MAX_DEPTH} deep"),
        });
    }
    if size > MAX_EXPANDED {
        return Err(SchemaError {
            path: String::new(),
            keyword: "$ref".into(),
            message: format!(
                "its references expand it to more than {MAX_EXPANDED} subschemas (reuse fans out); compiling and validating it would take time that cannot be interrupted"
            ),
        });
    }
    let mut regexes = std::collections::HashSet::new();
    patterns(schema, draft, &mut regexes);
    if regexes.len() > MAX_PATTERNS {
        return Err(SchemaError {
            path: String::new(),
            keyword: "pattern".into(),
            message: format!(
                "it holds {} distinct regular expressions (pattern, patternProperties); at most {MAX_PATTERNS}",
                regexes.len()
            ),
        });
    }
    // The schema against its meta-schema: its path is the instance path of that validation.
    if let Err(e) = jsonschema::meta::validate(schema) {
        return Err(schema_error(&e, "schema"));
    }
    let inner = jsonschema::options_for::<Ticking>()
        .with_draft(draft)
        .with_pattern_options(
            PatternOptions::regex()
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_DFA_SIZE_LIMIT),
        )
        .build(schema)
        .map_err(|e| SchemaError {
            path: e.instance_path().as_str().to_string(),
            keyword: match e.kind().keyword() {
                "" => "schema".to_string(),
                k => k.to_string(),
            },
            message: e.masked().to_string(),
        })?;
    Ok(Validator {
        inner,
        patterns: regexes.len(),
    })
}

/// One validation error, as jsonb gives it: where in the instance, where in the schema, the
/// keyword, and a message that does not quote the instance.
pub fn error_json(e: &ValidationError) -> serde_json::Value {
    serde_json::json!({
        "instance_path": e.instance_path().as_str(),
        "schema_path": e.schema_path().as_str(),
        "keyword": e.kind().keyword(),
        "message": message(e),
    })
}

/// The crate's masked message, except where even that quotes the instance: property names
/// (a name can be a secret: `{"sk_live_...": 1}`) are counted, never shown.
fn message(e: &ValidationError) -> String {
    use jsonschema::error::ValidationErrorKind as K;
    let count =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match e.kind() {
        K::PropertyNames { .. } => "a property name does not match propertyNames".to_string(),
        K::AdditionalProperties { unexpected } => format!(
            "additional properties are not allowed ({})",
            count(unexpected.len(), "property", "properties")
        ),
        K::UnevaluatedProperties { unexpected } => format!(
            "unevaluated properties are not allowed ({})",
            count(unexpected.len(), "property", "properties")
        ),
        K::UnevaluatedItems { unexpected } => format!(
            "unevaluated items are not allowed ({})",
            count(unexpected.len(), "item", "items")
        ),
        _ => e.masked().to_string(),
    }
}

thread_local! {
    static CACHE: RefCell<CompiledCache<Result<Validator, SchemaError>>> =
        RefCell::new(CompiledCache::new(MAX_ENTRIES, MAX_BYTES));
}

/// The compiled validator of a jsonb schema (or why it is not one), from the cache or compiled
/// now.  `container` is the schema's jsonb bytes, `to_value` makes its JSON on a miss.
pub fn validator(
    container: &[u8],
    to_value: impl FnOnce() -> Option<serde_json::Value>,
) -> Rc<Result<Validator, SchemaError>> {
    let entries = usize::try_from(crate::gucs::SCHEMA_CACHE_ENTRIES.get()).unwrap_or(0);
    if entries > 0 {
        if let Some(v) = CACHE.with_borrow_mut(|c| c.get(container)) {
            return v;
        }
    }
    let held = crate::alloc::held();
    let compiled = Rc::new(match to_value() {
        Some(schema) => compile(&schema),
        None => Err(SchemaError {
            path: String::new(),
            keyword: "schema".into(),
            message: "cannot be read: it holds a number outside the range of a double, or is nested more than 128 levels deep".into(),
        }),
    });
    let held = usize::try_from(crate::alloc::held() - held)
        .unwrap_or(0)
        .saturating_add(
            compiled
                .as_ref()
                .as_ref()
                .map_or(0, |v| v.patterns.saturating_mul(REGEX_DFA_SIZE_LIMIT)),
        );
    if entries > 0 {
        CACHE.with_borrow_mut(|c| {
            c.set_max_entries(entries);
            c.insert(container, compiled.clone(), held)
        });
    }
    compiled
}

/// For `tenancy.library_info()`: this backend's schema cache.
pub fn cache_info() -> serde_json::Value {
    CACHE.with_borrow(CompiledCache::info)
}

/// The validator of a jsonb argument.
pub fn validator_of(schema: &JsonbArg) -> Rc<Result<Validator, SchemaError>> {
    validator(schema.container(), || schema.to_value())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Levels of definitions, each referring to the next twice: 2^levels when expanded.
    fn fan_out(levels: u32) -> serde_json::Value {
        let mut defs = serde_json::Map::new();
        for i in 0..levels {
            let next = format!("#/$defs/a{}", i + 1);
            defs.insert(
                format!("a{i}"),
                serde_json::json!({"anyOf": [{"$ref": next}, {"allOf": [{"$ref": next}]}]}),
            );
        }
        defs.insert(format!("a{levels}"), serde_json::json!({"type": "string"}));
        serde_json::json!({"$defs": defs, "$ref": "#/$defs/a0"})
    }

    #[test]
    fn fanning_references_are_refused_before_compiling() {
        let small = walk(&fan_out(4), Draft::Draft202012, u64::MAX).0;
        let larger = walk(&fan_out(8), Draft::Draft202012, u64::MAX).0;
        assert!(larger > small * 10, "{small} {larger}");
        let started = std::time::Instant::now();
        let e = compile(&fan_out(40)).unwrap_err();
        assert_eq!(e.keyword, "$ref");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // A schema that reuses definitions without fanning out compiles.
        let mut reuse = serde_json::Map::new();
        for i in 0..200 {
            reuse.insert(
                format!("p{i}"),
                serde_json::json!({"$ref": "#/$defs/address"}),
            );
        }
        let schema = serde_json::json!({
            "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "zip": {"type": "string"}}}},
            "properties": reuse
        });
        assert!(compile(&schema).is_ok());
        // Recursion (a tree) counts once per cycle.
        let tree = serde_json::json!({"$defs": {"node": {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}, "$ref": "#/$defs/node"});
        assert!(walk(&tree, Draft::Draft202012, u64::MAX).0 < 20);
        assert!(compile(&tree).is_ok());
    }

    #[test]
    fn drafts_by_their_schema_uri() {
        for (uri, ok) in [
            ("http://json-schema.org/draft-04/schema#", true),
            ("http://json-schema.org/draft-07/schema", true),
            ("https://json-schema.org/draft/2020-12/schema", true),
            ("https://example.com/my-meta", false),
        ] {
            assert_eq!(
                compile(&serde_json::json!({"$schema": uri, "type": "object"})).is_ok(),
                ok,
                "{uri}"
            );
        }
        let e = compile(&serde_json::json!({"type": "objekt"})).unwrap_err();
        assert_eq!(e.path, "/type");
        let e = compile(&serde_json::json!({"properties": {"a": {"minLength": -1}}})).unwrap_err();
        assert_eq!(e.path, "/properties/a/minLength");
        // No remote references.
        assert!(compile(&serde_json::json!({"$ref": "https://example.com/s.json"})).is_err());
    }
}
