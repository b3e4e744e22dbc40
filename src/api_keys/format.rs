//! The API-key format: what a key looks like, how it is checked offline, and what is stored of
//! it.  Pure Rust (no PostgreSQL), unit-tested here; the functions that make, verify, revoke and
//! rotate keys are in the module above.
//!
//! ```text
//! tk_live_<tenant id: 22 base62><key id: 22 base62><secret: 43 base62><checksum: 6 base62>
//!                                                                          (101 characters)
//! ```
//!
//! * `tk_live_` / `tk_test_`: a prefix secret scanners can match, with the environment.
//! * tenant id and key id: the row's primary key, so verification is one index lookup (and a
//!   Citus cluster routes it to one shard).
//! * secret: 256 bits from the OS CSPRNG.
//! * checksum: the first 4 bytes of SHA-256 over everything before it (domain-separated), so a
//!   typo or a random string is refused without touching a table, and a scanner can check a
//!   candidate offline.
//!
//! Only `HMAC-SHA256(pepper, domain ‖ environment ‖ tenant id ‖ key id ‖ secret)` is stored
//! ([`key_hash`], in `tenancy_private.api_key_hashes`).  Keys are high-entropy: a slow hash
//! (bcrypt) would only make every request slow.
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_CHARS: usize = 22; // 62^22 > 2^128
const SECRET_CHARS: usize = 43; // 62^43 > 2^256
const CHECK_CHARS: usize = 6; // 62^6 > 2^32
const ENV_PREFIX_LEN: usize = 8; // "tk_live_" / "tk_test_"
pub const KEY_LEN: usize = ENV_PREFIX_LEN + 2 * ID_CHARS + SECRET_CHARS + CHECK_CHARS;
/// Characters of a key kept as its display prefix: the environment, the tenant and 6 of the key id.
pub(super) const DISPLAY_LEN: usize = ENV_PREFIX_LEN + ID_CHARS + 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Env {
    Live,
    Test,
}

impl Env {
    pub(super) fn prefix(self) -> &'static str {
        match self {
            Env::Live => "tk_live_",
            Env::Test => "tk_test_",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Env::Live => "live",
            Env::Test => "test",
        }
    }
    pub(super) fn parse(name: &str) -> Option<Env> {
        match name {
            "live" => Some(Env::Live),
            "test" => Some(Env::Test),
            _ => None,
        }
    }
}

/// Big-endian bytes as exactly `width` base62 digits.
fn base62_encode(bytes: &[u8], width: usize) -> String {
    let mut n = bytes.to_vec();
    let mut digits = vec![b'0'; width];
    for d in digits.iter_mut().rev() {
        let mut rem = 0u32;
        for b in n.iter_mut() {
            let acc = (rem << 8) | u32::from(*b);
            *b = (acc / 62) as u8;
            rem = acc % 62;
        }
        *d = ALPHABET[rem as usize];
    }
    debug_assert!(n.iter().all(|b| *b == 0), "width too small");
    String::from_utf8(digits).unwrap_or_default()
}

/// Exactly `N` big-endian bytes from base62 digits; `None` for a bad digit or a value that does
/// not fit (every value has one encoding).
fn base62_decode<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    for c in digits {
        let v = match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'Z' => c - b'A' + 10,
            b'a'..=b'z' => c - b'a' + 36,
            _ => return None,
        };
        let mut carry = u32::from(v);
        for b in out.iter_mut().rev() {
            let acc = u32::from(*b) * 62 + carry;
            *b = acc as u8;
            carry = acc >> 8;
        }
        if carry != 0 {
            return None;
        }
    }
    Some(out)
}

fn checksum(body: &[u8]) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(b"pg_tenancy/api-key-checksum/v1\0")
        .chain_update(body)
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A well-formed key, split.  The secret is zeroized when dropped.
pub struct ParsedKey {
    pub env: Env,
    pub tenant: [u8; 16],
    pub id: [u8; 16],
    pub secret: Zeroizing<[u8; 32]>,
}

pub fn encode(env: Env, tenant: &[u8; 16], id: &[u8; 16], secret: &[u8; 32]) -> Zeroizing<String> {
    let mut key = Zeroizing::new(String::with_capacity(KEY_LEN));
    key.push_str(env.prefix());
    key.push_str(&base62_encode(tenant, ID_CHARS));
    key.push_str(&base62_encode(id, ID_CHARS));
    key.push_str(&Zeroizing::new(base62_encode(secret, SECRET_CHARS)));
    let check = checksum(key.as_bytes());
    key.push_str(&base62_encode(&check, CHECK_CHARS));
    key
}

#[derive(Debug, PartialEq, Eq)]
pub enum FormatError {
    Empty,
    Malformed,
    Checksum,
}

/// Parse and check a key without any table: length, prefix, alphabet, checksum.
pub fn parse(key: &[u8]) -> Result<ParsedKey, FormatError> {
    if key.is_empty() {
        return Err(FormatError::Empty);
    }
    if key.len() != KEY_LEN {
        return Err(FormatError::Malformed);
    }
    let env = match &key[..ENV_PREFIX_LEN] {
        b"tk_live_" => Env::Live,
        b"tk_test_" => Env::Test,
        _ => return Err(FormatError::Malformed),
    };
    let (body, check) = key.split_at(KEY_LEN - CHECK_CHARS);
    let check = base62_decode::<4>(check).ok_or(FormatError::Malformed)?;
    let tenant_part = &body[ENV_PREFIX_LEN..ENV_PREFIX_LEN + ID_CHARS];
    let id_part = &body[ENV_PREFIX_LEN + ID_CHARS..ENV_PREFIX_LEN + 2 * ID_CHARS];
    let secret_part = &body[ENV_PREFIX_LEN + 2 * ID_CHARS..];
    let tenant = base62_decode::<16>(tenant_part).ok_or(FormatError::Malformed)?;
    let id = base62_decode::<16>(id_part).ok_or(FormatError::Malformed)?;
    let secret = Zeroizing::new(base62_decode::<32>(secret_part).ok_or(FormatError::Malformed)?);
    if checksum(body) != check {
        return Err(FormatError::Checksum);
    }
    Ok(ParsedKey {
        env,
        tenant,
        id,
        secret,
    })
}

/// The keyed hash stored for a key.
pub fn key_hash(
    pepper: &[u8; 32],
    env: Env,
    tenant: &[u8; 16],
    id: &[u8; 16],
    secret: &[u8; 32],
) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(pepper)
        .expect("HMAC-SHA256 takes a key of any length");
    mac.update(b"pg_tenancy/api-key/v1\0");
    mac.update(env.name().as_bytes());
    mac.update(tenant);
    mac.update(id);
    mac.update(secret);
    mac.finalize().into_bytes().into()
}

/// A scope: 1-100 characters of letters, digits and `_ . : * -` (no space, no comma: scopes
/// travel in the context setting separated by spaces).
pub fn valid_scope(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:*-".contains(&b))
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn base62_round_trips_and_is_canonical() {
        for bytes in [[0u8; 16], [0xff; 16], *b"0123456789abcdef"] {
            let s = base62_encode(&bytes, ID_CHARS);
            assert_eq!(s.len(), ID_CHARS);
            assert_eq!(base62_decode::<16>(s.as_bytes()), Some(bytes));
        }
        assert_eq!(base62_encode(&[0xff; 32], SECRET_CHARS).len(), SECRET_CHARS);
        // 62^22 - 1 does not fit in 16 bytes: refused, not wrapped.
        assert_eq!(base62_decode::<16>(&[b'z'; ID_CHARS]), None);
        assert_eq!(base62_decode::<4>(b"zzzzzz"), None);
        assert_eq!(base62_decode::<4>(b"00000!"), None);
    }

    #[test]
    fn keys_parse_back() {
        let key = encode(Env::Test, &[5; 16], &[7; 16], &[9; 32]);
        assert_eq!(key.len(), KEY_LEN);
        assert!(key.starts_with("tk_test_"));
        let p = parse(key.as_bytes()).unwrap();
        assert_eq!(
            (p.env, p.tenant, p.id, *p.secret),
            (Env::Test, [5; 16], [7; 16], [9; 32])
        );
    }

    #[test]
    fn typos_are_caught_by_the_checksum() {
        let key = encode(Env::Live, &[3; 16], &[1; 16], &[2; 32]).to_string();
        let bytes = key.as_bytes();
        let mut caught = 0;
        for i in ENV_PREFIX_LEN..KEY_LEN {
            for c in [b'0', b'a', b'Z'] {
                if bytes[i] == c {
                    continue;
                }
                let mut typo = bytes.to_vec();
                typo[i] = c;
                assert!(parse(&typo).is_err(), "typo at {i} accepted");
                caught += 1;
            }
        }
        assert!(caught > 250);
        let mut swapped = bytes.to_vec();
        swapped.swap(20, 21);
        assert!(bytes[20] == bytes[21] || parse(&swapped).is_err());
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(parse(b"").err(), Some(FormatError::Empty));
        for bad in [
            &b"tk_live_"[..],
            &[b'x'; KEY_LEN][..],
            &[0xff; KEY_LEN][..],
            &vec![b'a'; 10_000][..],
        ] {
            assert_eq!(parse(bad).err(), Some(FormatError::Malformed));
        }
        let key = encode(Env::Live, &[3; 16], &[1; 16], &[2; 32]).to_string();
        let wrong_env = key.replacen("tk_live_", "tk_prod_", 1);
        assert!(parse(wrong_env.as_bytes()).is_err());
        let other_env = key.replacen("tk_live_", "tk_test_", 1);
        assert_eq!(
            parse(other_env.as_bytes()).err(),
            Some(FormatError::Checksum)
        );
    }

    #[test]
    fn hashes_depend_on_every_input() {
        let h = key_hash(&[1; 32], Env::Live, &[4; 16], &[2; 16], &[3; 32]);
        assert_ne!(
            h,
            key_hash(&[9; 32], Env::Live, &[4; 16], &[2; 16], &[3; 32])
        );
        assert_ne!(
            h,
            key_hash(&[1; 32], Env::Test, &[4; 16], &[2; 16], &[3; 32])
        );
        assert_ne!(
            h,
            key_hash(&[1; 32], Env::Live, &[9; 16], &[2; 16], &[3; 32])
        );
        assert_ne!(
            h,
            key_hash(&[1; 32], Env::Live, &[4; 16], &[9; 16], &[3; 32])
        );
        assert_ne!(
            h,
            key_hash(&[1; 32], Env::Live, &[4; 16], &[2; 16], &[9; 32])
        );
    }

    #[test]
    fn scopes() {
        for ok in ["read", "projects:write", "a.b-c_d", "*"] {
            assert!(valid_scope(ok));
        }
        for bad in ["", "a b", "a,b", "é", &"x".repeat(101)] {
            assert!(!valid_scope(bad));
        }
    }
}
