//! A per-backend cache of compiled things (JSON Schema validators, field mappings) keyed by
//! the bytes they were compiled from: a 64-bit hash, then the bytes compared.  Any change of
//! the source is a new key, so there is no invalidation to miss: a schema or a mapping edited
//! by another session is compiled again at its next use.  Bounded in entries and in bytes: an
//! entry weighs its key and what compiling it left held on Rust's heap ([`crate::alloc`]), so a
//! small schema that compiles into a large validator weighs what it holds.  When full, the least
//! recently used quarter goes.
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

struct Entry<V> {
    bytes: Box<[u8]>,
    value: Rc<V>,
    weight: usize,
    used: u64,
}

pub struct CompiledCache<V> {
    map: HashMap<u64, Vec<Entry<V>>>,
    max_entries: usize,
    max_bytes: usize,
    entries: usize,
    bytes: usize,
    clock: u64,
    hits: u64,
    misses: u64,
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl<V> CompiledCache<V> {
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        CompiledCache {
            map: HashMap::new(),
            max_entries,
            max_bytes,
            entries: 0,
            bytes: 0,
            clock: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// The value compiled from `bytes`, if kept (a hit counts; a miss counts at `insert`).
    pub fn get(&mut self, bytes: &[u8]) -> Option<Rc<V>> {
        self.get_weighed(bytes).map(|(v, _)| v)
    }

    /// [`Self::get`], with the entry's weight (its key and what compiling it held).
    pub fn get_weighed(&mut self, bytes: &[u8]) -> Option<(Rc<V>, usize)> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self
            .map
            .get_mut(&hash(bytes))?
            .iter_mut()
            .find(|e| &*e.bytes == bytes)?;
        entry.used = clock;
        self.hits += 1;
        Some((entry.value.clone(), entry.weight))
    }

    /// Keep at most `n` entries from the next insertion on.
    pub fn set_max_entries(&mut self, n: usize) {
        self.max_entries = n.max(1);
    }

    /// Keep `value`, compiled from `bytes`, which holds `held` bytes of its own (not kept when
    /// the two weigh over a quarter of the byte budget).
    pub fn insert(&mut self, bytes: &[u8], value: Rc<V>, held: usize) {
        self.misses += 1;
        let weight = bytes.len().saturating_add(held);
        if weight > self.max_bytes / 4 {
            return;
        }
        while self.entries >= self.max_entries || self.bytes + weight > self.max_bytes {
            self.evict();
        }
        self.clock += 1;
        self.entries += 1;
        self.bytes += weight;
        self.map.entry(hash(bytes)).or_default().push(Entry {
            bytes: bytes.into(),
            value,
            weight,
            used: self.clock,
        });
    }

    /// Drop the least recently used quarter (one pass to find the cut, one to drop).
    fn evict(&mut self) {
        let mut used: Vec<u64> = self.map.values().flatten().map(|e| e.used).collect();
        if used.is_empty() {
            return;
        }
        let n = (used.len() / 4).max(1) - 1;
        let cut = *used.select_nth_unstable(n).1;
        for list in self.map.values_mut() {
            list.retain(|e| e.used > cut);
        }
        self.map.retain(|_, list| !list.is_empty());
        self.entries = self.map.values().map(Vec::len).sum();
        self.bytes = self.map.values().flatten().map(|e| e.weight).sum();
    }

    /// Forget every entry (the counts of hits and misses stay).
    pub fn clear(&mut self) {
        self.map.clear();
        self.entries = 0;
        self.bytes = 0;
    }

    /// For `tenancy.library_info()`.
    pub fn info(&self) -> serde_json::Value {
        serde_json::json!({
            "entries": self.entries, "bytes": self.bytes, "hits": self.hits, "misses": self.misses
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_least_recently_used_go_first() {
        let mut c = CompiledCache::new(8, 1 << 20);
        for i in 0u32..8 {
            c.insert(&i.to_le_bytes(), Rc::new(i), 0);
        }
        // 0 is used again, so 1 and 2 are the oldest quarter when the ninth arrives.
        assert_eq!(c.get(&0u32.to_le_bytes()).as_deref(), Some(&0));
        c.insert(&8u32.to_le_bytes(), Rc::new(8), 0);
        assert!(c.get(&1u32.to_le_bytes()).is_none());
        assert!(c.get(&0u32.to_le_bytes()).is_some());
        assert!(c.entries <= 8);
        // Bytes bound: one entry over a quarter of the budget is not kept, by its key or by
        // what it holds.
        let mut c = CompiledCache::new(8, 64);
        c.insert(&[0u8; 17], Rc::new(1), 0);
        assert!(c.get(&[0u8; 17]).is_none());
        c.insert(&[1u8; 4], Rc::new(1), 13);
        assert!(c.get(&[1u8; 4]).is_none());
        c.insert(&[2u8; 4], Rc::new(1), 8);
        assert!(c.get(&[2u8; 4]).is_some());
    }
}
