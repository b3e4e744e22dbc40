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
//! The crate's evaluation is also recursive, as deep as the instance (a schema that refers to
//! itself, `{"items": {"$ref": "#"}}`, over 5,000 nested arrays overflowed the stack and took the
//! server down).  Every visit also runs PostgreSQL's `check_stack_depth()`, which raises 54001
//! ("stack depth limit exceeded") past `max_stack_depth`, well before the real limit.
use jsonschema::json::jsonb::{JsonbArray, JsonbMembers, JsonbNumber, JsonbObject};
use jsonschema::json::{Array, Json, Jsonb, JsonbNode, Node, NodeIdentity, Object};
use jsonschema::JsonType;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::Cell;
use std::ops::ControlFlow;

/// Node visits between two interrupt checks (a check costs a load when nothing is pending).
pub const TICK_EVERY: u32 = 1024;

thread_local! {
    static VISITS: Cell<u32> = const { Cell::new(0) };
}

#[inline]
fn tick() {
    // Not in the unit tests' binary, which runs without a server to link against.
    // SAFETY: compares the current stack address with the backend's limit; raises an ERROR.
    #[cfg(not(test))]
    unsafe {
        pgrx::pg_sys::check_stack_depth()
    };
    VISITS.with(|v| {
        let n = v.get().wrapping_add(1);
        v.set(n);
        if n % TICK_EVERY == 0 {
            #[cfg(not(test))]
            pgrx::check_for_interrupts!();
        }
    });
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
        self.0.as_string()
    }

    fn as_number(&self) -> Option<JsonbNumber<'a>> {
        self.0.as_number()
    }

    fn as_boolean(&self) -> Option<bool> {
        self.0.as_boolean()
    }

    fn is_null(&self) -> bool {
        self.0.is_null()
    }

    fn is_number(&self) -> bool {
        self.0.is_number()
    }

    fn is_string(&self) -> bool {
        self.0.is_string()
    }

    fn json_type(&self) -> JsonType {
        tick();
        self.0.json_type()
    }

    fn string_length(&self) -> Option<u64> {
        self.0.string_length()
    }

    fn string_length_within(&self, min: u64, max: u64) -> Option<bool> {
        self.0.string_length_within(min, max)
    }

    fn equals_value(&self, expected: &Value) -> bool {
        tick();
        self.0.equals_value(expected)
    }

    fn to_value(&self) -> Cow<'a, Value> {
        self.0.to_value()
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
        tick();
        self.0.is_unique()
    }
}
