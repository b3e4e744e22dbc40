//! Tokens whose signature was verified, per backend, so that a connection serving the same user
//! pays for the signature once (an ES256 verification costs about 50 µs, an RS256 one about 30 µs,
//! the rest of `pre_request` a few: bench/results.md, "JWT").
//!
//! * **Key**: the SHA-256 digest of the whole token (header, payload and signature), so a hit is
//!   the very token that was verified; the cache keeps no token.
//! * **Value**: the verified payload, and its `exp`.  Only the signature is cached: the claims
//!   (`exp`, `nbf`, `iat`, `aud`, `iss`) are checked again at every use, against the settings of
//!   the moment.
//! * **Bound**: `tenancy.jwt_cache_entries` entries (1000 by default; 0 turns the cache off) and
//!   [`MAX_BYTES`] of payloads; payloads over [`MAX_PAYLOAD`] are not cached.  When full, the
//!   expired entries go first, then the oldest quarter.
//! * **Invalidation**: an entry leaves when its token expires; the whole cache is emptied when the
//!   keys change (another value of `tenancy.jwt_secret`: a key added, rotated or revoked), see
//!   [`super::backend`].
use std::collections::HashMap;
use std::rc::Rc;

/// The most payload bytes cached per backend.
pub const MAX_BYTES: usize = 4 << 20;
/// The largest payload cached (bigger tokens are verified each time).
pub const MAX_PAYLOAD: usize = 16 << 10;

pub type Digest = [u8; 32];

struct Entry {
    payload: Rc<str>,
    exp: f64,
    seq: u64,
}

#[derive(Default)]
pub struct TokenCache {
    map: HashMap<Digest, Entry>,
    bytes: usize,
    seq: u64,
}

impl TokenCache {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }

    /// The verified payload of the token with this digest, unless it has expired by `now`
    /// (an expired entry is dropped).
    pub fn get(&mut self, digest: &Digest, now: i64) -> Option<Rc<str>> {
        let entry = self.map.get(digest)?;
        if expired(entry.exp, now) {
            self.remove(digest);
            return None;
        }
        Some(entry.payload.clone())
    }

    /// Remember a verified token, within `capacity` entries.
    pub fn insert(
        &mut self,
        digest: Digest,
        payload: Rc<str>,
        exp: f64,
        capacity: usize,
        now: i64,
    ) {
        if capacity == 0 || payload.len() > MAX_PAYLOAD || expired(exp, now) {
            return;
        }
        self.remove(&digest);
        if self.map.len() >= capacity || self.bytes + payload.len() > MAX_BYTES {
            self.map.retain(|_, e| !expired(e.exp, now));
            self.bytes = self.map.values().map(|e| e.payload.len()).sum();
        }
        while !self.map.is_empty()
            && (self.map.len() >= capacity || self.bytes + payload.len() > MAX_BYTES)
        {
            self.evict_oldest((self.map.len() / 4).max(1));
        }
        self.seq += 1;
        self.bytes += payload.len();
        self.map.insert(
            digest,
            Entry {
                payload,
                exp,
                seq: self.seq,
            },
        );
    }

    fn remove(&mut self, digest: &Digest) {
        if let Some(e) = self.map.remove(digest) {
            self.bytes -= e.payload.len();
        }
    }

    /// Drop the `n` oldest entries: one pass to find the cut, one to drop (amortised over the
    /// `n` inserts until the next eviction).
    fn evict_oldest(&mut self, n: usize) {
        let mut seqs: Vec<u64> = self.map.values().map(|e| e.seq).collect();
        let cut = n.min(seqs.len()) - 1;
        let (_, nth, _) = seqs.select_nth_unstable(cut);
        let cut = *nth;
        self.map.retain(|_, e| e.seq > cut);
        self.bytes = self.map.values().map(|e| e.payload.len()).sum();
    }
}

fn expired(exp: f64, now: i64) -> bool {
    (now - super::LEEWAY) as f64 >= exp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(i: u32) -> Digest {
        let mut d = [0u8; 32];
        d[..4].copy_from_slice(&i.to_be_bytes());
        d
    }

    #[test]
    fn hits_expire_with_their_token() {
        let mut c = TokenCache::default();
        c.insert(d(1), "{\"exp\":1000}".into(), 1000.0, 10, 0);
        assert_eq!(c.get(&d(1), 900).as_deref(), Some("{\"exp\":1000}"));
        assert!(c.get(&d(2), 900).is_none());
        // Past exp and the leeway: gone.
        assert!(c.get(&d(1), 1000 + super::super::LEEWAY).is_none());
        assert_eq!(c.len(), 0);
        // An expired token is not cached at all; nor with capacity 0.
        c.insert(d(3), "x".into(), 10.0, 10, 1000);
        c.insert(d(4), "x".into(), 5000.0, 0, 1000);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let mut c = TokenCache::default();
        for i in 0..1000 {
            c.insert(d(i), "p".into(), 1e9, 100, 0);
            assert!(c.len() <= 100);
        }
        // The newest survive, the oldest went.
        assert!(c.get(&d(999), 0).is_some());
        assert!(c.get(&d(0), 0).is_none());
        // Expired entries go first.
        let mut c = TokenCache::default();
        for i in 0..10 {
            c.insert(
                d(i),
                "p".into(),
                if i % 2 == 0 { 100.0 } else { 1e9 },
                10,
                0,
            );
        }
        c.insert(d(100), "p".into(), 1e9, 10, 1000);
        assert_eq!(c.len(), 6);
        assert!((1..10).step_by(2).all(|i| c.get(&d(i), 1000).is_some()));
        // Bytes: payloads over MAX_PAYLOAD are not cached; the total stays under MAX_BYTES.
        let big: Rc<str> = "x".repeat(MAX_PAYLOAD).into();
        let mut c = TokenCache::default();
        c.insert(d(1), "x".repeat(MAX_PAYLOAD + 1).into(), 1e9, 10_000, 0);
        assert_eq!(c.len(), 0);
        for i in 0..1000 {
            c.insert(d(i), big.clone(), 1e9, 10_000, 0);
            assert!(c.bytes <= MAX_BYTES);
        }
        assert_eq!(
            c.bytes,
            c.map.values().map(|e| e.payload.len()).sum::<usize>()
        );
        assert!(c.len() >= MAX_BYTES / MAX_PAYLOAD * 3 / 4);
    }
}
