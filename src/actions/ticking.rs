//! jsonb as the `jsonschema` crate reads it in place (its `jsonb` feature: PostgreSQL's container
//! bytes, no conversion to text or `serde_json`), wrapped so that validation can be interrupted.
//!
//! The crate's evaluation is Rust code that never checks for interrupts, and its cost is about
//! schema × instance: a tenant's schema over a large document could hold a backend past any
//! `statement_timeout`.  Every node the validator looks at passes through [`TNode`]: each
//! [`TICK_EVERY`] visits, `check_for_interrupts!` runs, and a pending cancel or timeout raises
//! its ERROR as a Rust panic that unwinds through the crate to the `pg_extern` boundary, which
//! reports it (57014).
//!
//! A visit is weighted by what it costs: a string by its length (a `pattern` runs over all of
//! it), `uniqueItems` by the array's length.  Listing every error ([`with_budget`]) is bounded
//! in visits too, since the crate collects every error before returning any.
//!
//! The crate's evaluation is also recursive, as deep as the instance (a schema that refers to
//! itself, `{"items": {"$ref": "#"}}`, over 5,000 nested arrays overflowed the stack and took the
//! server down).  Every visit also runs PostgreSQL's `check_stack_depth()`, which raises 54001
//! ("stack depth limit exceeded") past `max_stack_depth`, well before the real limit.
use jsonschema::json::jsonb::{JsonbArray, JsonbMembers, JsonbNumber, JsonbObject};
use jsonschema::json::{Array, Json, Jsonb, JsonbNode, Node, NodeIdentity, Object};
use jsonschema::JsonType;
use serde_json::Value;
use std::borrow::Cow;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, Ordering};

/// Node visits between two interrupt checks (a check costs a load when nothing is pending).
pub const TICK_EVERY: u32 = 1024;

/// Work a call that lists every error may do ([`with_budget`]): the crate collects every error
/// before returning any, so both its steps and the Rust memory it holds are bounded.
pub const ERROR_LISTING: Budget = Budget {
    steps: 1_000_000,
    bytes: 32 << 20,
    what: "listing the errors (the schema over this document)",
    hint: "tenancy.jsonb_matches_schema answers whether it matches.",
};

/// A bound on one call's work: steps ([`tick_n`]) and Rust memory held ([`crate::alloc`]).
#[derive(Clone, Copy)]
pub struct Budget {
    pub steps: u64,
    pub bytes: isize,
    pub what: &'static str,
    pub hint: &'static str,
}

// Plain statics, not thread-locals: a backend runs on one thread, and a thread-local in a loaded
// library costs a `__tls_get_addr` call on every visit (5% of a mapping's time).
static VISITS: AtomicU32 = AtomicU32::new(0);
/// The budget in force ([`with_budget`]), null when none; its steps left; Rust's heap at its start.
static ACTIVE: AtomicPtr<Budget> = AtomicPtr::new(std::ptr::null_mut());
static STEPS_LEFT: AtomicU64 = AtomicU64::new(0);
static HELD_AT_START: AtomicIsize = AtomicIsize::new(0);

/// One node visit.
#[inline]
pub fn tick() {
    tick_n(1)
}

/// A visit that costs `n` (a long string counts its length: a regex runs over all of it).
/// Checks the stack depth, interrupts every [`TICK_EVERY`], and the budget of [`with_budget`].
#[inline]
pub fn tick_n(n: u32) {
    // Not in the unit tests' binary, which runs without a server to link against.
    // SAFETY: compares the current stack address with the backend's limit; raises an ERROR.
    #[cfg(not(test))]
    unsafe {
        pgrx::pg_sys::check_stack_depth()
    };
    let before = VISITS.fetch_add(n, Ordering::Relaxed);
    let after = before.wrapping_add(n);
    if n >= TICK_EVERY || before / TICK_EVERY != after / TICK_EVERY {
        #[cfg(not(test))]
        pgrx::check_for_interrupts!();
    }
    let active = ACTIVE.load(Ordering::Relaxed);
    if active.is_null() {
        return;
    }
    // SAFETY: ACTIVE only ever holds a &'static Budget (with_budget).
    let budget: &'static Budget = unsafe { &*active };
    let left = STEPS_LEFT.load(Ordering::Relaxed);
    let over_steps = left < u64::from(n);
    let over_bytes = crate::alloc::held() - HELD_AT_START.load(Ordering::Relaxed) > budget.bytes;
    if over_steps || over_bytes {
        ACTIVE.store(std::ptr::null_mut(), Ordering::Relaxed);
        let message = if over_steps {
            format!(
                "{} would take more than {} steps",
                budget.what, budget.steps
            )
        } else {
            format!(
                "{} would hold more than {} MB",
                budget.what,
                budget.bytes >> 20
            )
        };
        // Not in the unit tests' binary, which runs without a server to link against.
        #[cfg(test)]
        panic!("{message}");
        #[cfg(not(test))]
        crate::error::raise(
            pgrx::PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            message,
            Some(budget.hint),
        )
    }
    STEPS_LEFT.store(left - u64::from(n), Ordering::Relaxed);
}

/// The longest string a validator with regular expressions reads (54000 past it): a regex match
/// cannot be interrupted, and costs up to its program's size times the string's length.
pub const MAX_MATCHED_STRING: usize = 1 << 20;

/// Whether the validator running has regular expressions ([`with_patterns`]).
static PATTERNS: AtomicBool = AtomicBool::new(false);

/// Run `f` (a validation) noting whether its validator has regular expressions.
pub fn with_patterns<R>(on: bool, f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            PATTERNS.store(self.0, Ordering::Relaxed);
        }
    }
    let _reset = Reset(PATTERNS.swap(on, Ordering::Relaxed));
    f()
}

/// A string the validator reads as text (what `pattern`, `patternProperties` and `format` match):
/// under regular expressions, at most [`MAX_MATCHED_STRING`].
fn read_string(len: usize) {
    tick_n(string_weight(len));
    if len > MAX_MATCHED_STRING && PATTERNS.load(Ordering::Relaxed) {
        let message = format!(
            "a string of {len} bytes under a schema with regular expressions (pattern, patternProperties): at most {MAX_MATCHED_STRING}"
        );
        // Not in the unit tests' binary, which runs without a server to link against.
        #[cfg(test)]
        panic!("{message}");
        #[cfg(not(test))]
        crate::error::raise(
            pgrx::PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            message,
            Some("A regular expression's match cannot be interrupted, so the strings a schema with patterns reads are bounded."),
        )
    }
}

/// The weight of a string of `len` bytes.
#[inline]
pub fn string_weight(len: usize) -> u32 {
    1 + u32::try_from(len / 1024).unwrap_or(u32::MAX / 2)
}

/// Run `f` within `budget` ([`tick_n`] raises 54000 past it).
pub fn with_budget<R>(budget: &'static Budget, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            ACTIVE.store(std::ptr::null_mut(), Ordering::Relaxed);
        }
    }
    let _reset = Reset;
    STEPS_LEFT.store(budget.steps, Ordering::Relaxed);
    HELD_AT_START.store(crate::alloc::held(), Ordering::Relaxed);
    ACTIVE.store(budget as *const Budget as *mut Budget, Ordering::Relaxed);
    f()
}

/// The representation: jsonb, with a tick per node visited.
pub struct Ticking;

impl Ticking {
    /// A node over a jsonb root container (the varlena's data, as PostgreSQL wrote it).
    pub fn root(container: &[u8]) -> TNode<'_> {
        TNode(Jsonb::root(container))
    }
}

#[derive(Clone, Copy)]
pub struct TNode<'a>(JsonbNode<'a>);
pub struct TObject<'a>(JsonbObject<'a>);
pub struct TArray<'a>(JsonbArray<'a>);

impl Json for Ticking {
    type Node<'a> = TNode<'a>;
    type PreparedKey = <Jsonb as Json>::PreparedKey;
    type StringBuffer = <Jsonb as Json>::StringBuffer;

    const KEYS_PER_LOOKUP: usize = <Jsonb as Json>::KEYS_PER_LOOKUP;
    const ACYCLIC: bool = <Jsonb as Json>::ACYCLIC;

    fn prepare_key(key: &str) -> Self::PreparedKey {
        Jsonb::prepare_key(key)
    }

    fn with_string_node<T>(
        buffer: &mut Self::StringBuffer,
        string: &str,
        f: impl FnOnce(TNode<'_>) -> T,
    ) -> T {
        Jsonb::with_string_node(buffer, string, |n| f(TNode(n)))
    }
}

impl<'a> Node<'a, Ticking> for TNode<'a> {
    type Object = TObject<'a>;
    type Array = TArray<'a>;
    type Number = JsonbNumber<'a>;

    fn as_object(&self) -> Option<TObject<'a>> {
        tick();
        self.0.as_object().map(TObject)
    }

    fn as_array(&self) -> Option<TArray<'a>> {
        tick();
        self.0.as_array().map(TArray)
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        let s = self.0.as_string();
        read_string(s.as_ref().map_or(0, |s| s.len()));
        s
    }

    fn as_number(&self) -> Option<JsonbNumber<'a>> {
        tick();
        self.0.as_number()
    }

    fn as_boolean(&self) -> Option<bool> {
        tick();
        self.0.as_boolean()
    }

    fn is_null(&self) -> bool {
        tick();
        self.0.is_null()
    }

    fn is_number(&self) -> bool {
        tick();
        self.0.is_number()
    }

    fn is_string(&self) -> bool {
        tick();
        self.0.is_string()
    }

    fn json_type(&self) -> JsonType {
        tick();
        self.0.json_type()
    }

    fn string_length(&self) -> Option<u64> {
        tick_n(string_weight(self.0.as_string().map_or(0, |s| s.len())));
        self.0.string_length()
    }

    fn string_length_within(&self, min: u64, max: u64) -> Option<bool> {
        tick_n(string_weight(self.0.as_string().map_or(0, |s| s.len())));
        self.0.string_length_within(min, max)
    }

    fn equals_value(&self, expected: &Value) -> bool {
        tick();
        self.0.equals_value(expected)
    }

    fn to_value(&self) -> Cow<'a, Value> {
        tick();
        self.0.to_value()
    }

    // An error keeps the node and makes its value only if asked (the default made a copy of
    // the instance's subtree for every error: 60 MB each for a 60 MB string).
    fn lazy_value(&self) -> jsonschema_value::LazyInstance<'a> {
        self.0.lazy_value()
    }

    fn identity(&self) -> Option<NodeIdentity> {
        self.0.identity()
    }

    fn container_identity(&self) -> Option<NodeIdentity> {
        self.0.container_identity()
    }
}

pub struct TMembers<'a>(JsonbMembers<'a>);

impl<'a> Iterator for TMembers<'a> {
    type Item = (Cow<'a, str>, TNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        tick();
        self.0.next().map(|(name, node)| (name, TNode(node)))
    }
}

impl<'a> Object<'a, Ticking> for TObject<'a> {
    type Node = TNode<'a>;
    type MemberName = Cow<'a, str>;
    type MembersIter = TMembers<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, key: &<Ticking as Json>::PreparedKey) -> Option<TNode<'a>> {
        tick();
        self.0.get(key).map(TNode)
    }

    fn members(&self) -> TMembers<'a> {
        TMembers(self.0.members())
    }

    fn try_for_each_name_node<B>(
        &self,
        buffer: &mut <Ticking as Json>::StringBuffer,
        mut f: impl FnMut(TNode<'_>) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        self.0.try_for_each_name_node(buffer, |n| {
            tick();
            f(TNode(n))
        })
    }
}

pub struct TElements<'a>(<JsonbArray<'a> as Array<'a, Jsonb>>::ElementsIter);

impl<'a> Iterator for TElements<'a> {
    type Item = TNode<'a>;

    fn next(&mut self) -> Option<TNode<'a>> {
        tick();
        self.0.next().map(TNode)
    }
}

impl<'a> Array<'a, Ticking> for TArray<'a> {
    type Node = TNode<'a>;
    type ElementsIter = TElements<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn elements(&self) -> TElements<'a> {
        TElements(self.0.elements())
    }

    fn is_unique(&self) -> bool {
        tick_n(string_weight(self.0.len().saturating_mul(64)));
        self.0.is_unique()
    }
}
