//! Tokens whose signature was verified, per backend, so that a connection serving the same user
//! pays for the signature once (an ES256 verification adds about 240 µs to `pre_request`, an
//! RS256 one about 70 µs, a cache hit about 2: bench/results.md, "JWT").
//!
//! * **Key**: the SHA-256 digest of the whole token (header, payload and signature), so a hit is
//!   the very token that was verified; the cache keeps no token.
//! * **Value**: what the verified payload says, read once ([`Verified`]): the claims we check and
//!   the user and tenant it names.  Only the signature is taken on trust: the claims (`exp`,
//!   `nbf`, `iat`, `aud`, `iss`) are checked again at every use, against the clock and the
//!   settings of the moment.
//! * **Bound**: `tenancy.jwt_cache_entries` entries (1000 by default; 0 turns the cache off) and
//!   [`MAX_BYTES`] of payloads; payloads over [`MAX_PAYLOAD`] are not cached.  When full, the
//!   expired entries go, and if that frees nothing the cache is emptied (as `lookup::Cache`
//!   does): a working set larger than the bound is verified again, never held past it.
//! * **Invalidation**: an entry leaves when its token expires; the whole cache is emptied when the
//!   keys change (another value of `tenancy.jwt_secret`: a key added, rotated or revoked), see
//!   [`super::backend`].
use super::Verified;
use std::collections::HashMap;
use std::rc::Rc;

/// The most payload bytes cached per backend.
pub const MAX_BYTES: usize = 4 << 20;
/// The largest payload cached (bigger tokens are verified each time).
pub const MAX_PAYLOAD: usize = 16 << 10;

pub type Digest = [u8; 32];

#[derive(Default)]
pub struct TokenCache {
    map: HashMap<Digest, Rc<Verified>>,
    bytes: usize,
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

    /// The verified token with this digest, unless it has expired by `now` (an expired entry is
    /// dropped).
    pub fn get(&mut self, digest: &Digest, now: i64) -> Option<Rc<Verified>> {
        let verified = self.map.get(digest)?;
        if expired(verified.claims.exp, now) {
            self.bytes -= verified.size;
            self.map.remove(digest);
            return None;
        }
        Some(verified.clone())
    }

    /// Remember a verified token, within `capacity` entries.
    pub fn insert(&mut self, digest: Digest, verified: Rc<Verified>, capacity: usize, now: i64) {
        if capacity == 0 || verified.size > MAX_PAYLOAD || expired(verified.claims.exp, now) {
            return;
        }
        if let Some(old) = self.map.remove(&digest) {
            self.bytes -= old.size;
        }
        if self.map.len() >= capacity || self.bytes + verified.size > MAX_BYTES {
            self.map.retain(|_, v| !expired(v.claims.exp, now));
            self.bytes = self.map.values().map(|v| v.size).sum();
            if self.map.len() >= capacity || self.bytes + verified.size > MAX_BYTES {
                self.clear();
            }
        }
        self.bytes += verified.size;
        self.map.insert(digest, verified);
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

    fn v(payload: &str, exp: f64) -> Rc<Verified> {
        let mut claims = super::super::Claims::parse(r#"{"exp": 0}"#).unwrap();
        claims.exp = exp;
        Rc::new(Verified {
            claims,
            identity: Ok(Default::default()),
            size: payload.len(),
        })
    }

    #[test]
    fn hits_expire_with_their_token() {
        let mut c = TokenCache::default();
        c.insert(d(1), v("{\"exp\":1000}", 1000.0), 10, 0);
        assert_eq!(c.get(&d(1), 900).map(|v| v.size), Some(12));
        assert!(c.get(&d(2), 900).is_none());
        // Past exp and the leeway: gone.
        assert!(c.get(&d(1), 1000 + super::super::LEEWAY).is_none());
        assert_eq!(c.len(), 0);
        // An expired token is not cached at all; nor with capacity 0.
        c.insert(d(3), v("x", 10.0), 10, 1000);
        c.insert(d(4), v("x", 5000.0), 0, 1000);
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let mut c = TokenCache::default();
        for i in 0..1000 {
            c.insert(d(i), v("p", 1e9), 100, 0);
            assert!(c.len() <= 100);
        }
        // Full of live tokens: emptied, then refilled (the newest is there, the first is not).
        assert!(c.get(&d(999), 0).is_some());
        assert!(c.get(&d(0), 0).is_none());
        // Expired entries go first.
        let mut c = TokenCache::default();
        for i in 0..10 {
            c.insert(d(i), v("p", if i % 2 == 0 { 100.0 } else { 1e9 }), 10, 0);
        }
        c.insert(d(100), v("p", 1e9), 10, 1000);
        assert_eq!(c.len(), 6);
        assert!((1..10).step_by(2).all(|i| c.get(&d(i), 1000).is_some()));
        // Bytes: payloads over MAX_PAYLOAD are not cached; the total stays under MAX_BYTES.
        let big = "x".repeat(MAX_PAYLOAD);
        let mut c = TokenCache::default();
        c.insert(d(1), v(&"x".repeat(MAX_PAYLOAD + 1), 1e9), 10_000, 0);
        assert!(c.is_empty());
        for i in 0..1000 {
            c.insert(d(i), v(&big, 1e9), 10_000, 0);
            assert!(c.bytes <= MAX_BYTES);
        }
        assert_eq!(c.bytes, c.map.values().map(|v| v.size).sum::<usize>());
        assert!(!c.is_empty());
    }
}
