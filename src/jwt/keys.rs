//! The keys `tenancy.jwt_secret` holds, as PostgREST's `jwt-secret` takes them: a secret string
//! (HS256), one JWK, or a JWKS (`{"keys": [...]}`) mixing `oct`, `RSA`, `EC` (P-256, P-384) and
//! `OKP` (Ed25519) keys.  Each key fixes its own algorithm: an `oct` key is HMAC (its `alg`, or
//! HS256), an RSA key is RS256/384/512 (its `alg`, or RS256), an EC key is ES256 or ES384 by its
//! curve, an Ed25519 key is EdDSA.  A token's `alg` only ever *selects among* those keys, so an
//! RSA public key can never be used as an HMAC secret, nor a secret as anything but one.
//!
//! Parsed once per backend per distinct setting ([`super::backend`]); pure, unit-tested below.
//! Errors name the key by position and `kid`, never by any byte of its material.
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

/// The most keys a set may hold: a token without `kid` is tried against each key of its
/// algorithm, so this bounds the work one token can cause.
pub const MAX_KEYS: usize = 32;
/// RSA moduli accepted: at least 2048 bits (NIST), at most 4096 (the `rsa` crate's default bound;
/// verification time grows with the square of the size).
pub const RSA_BITS: std::ops::RangeInclusive<usize> = 2048..=4096;
/// The shortest secret string accepted for HS256 (RFC 7518, 3.2: a key at least as long as the
/// hash output).
pub const MIN_SECRET_BYTES: usize = 32;

/// The algorithms of the keys we accept (RFC 7518 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    ES256,
    ES384,
    EdDSA,
}

impl Alg {
    pub const ALL: [Alg; 9] = [
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// The algorithm a token's `alg` names, if we know it (`none` never is one).
    pub fn from_name(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// What verifies a signature: the key material, already decoded and checked.
enum Verifier {
    Hmac(Zeroizing<Vec<u8>>),
    Rsa(rsa::PublicKey),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// One usable key.
pub struct Key {
    /// Its place in the setting, from 1 (the secret string is 1).
    pub position: usize,
    pub kid: Option<String>,
    pub alg: Alg,
    /// `oct`, `RSA`, `EC` or `OKP`.
    pub kty: &'static str,
    /// Key size in bits (the secret's length for `oct`).
    pub bits: usize,
    verifier: Verifier,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the material (an `oct` key is a secret).
        f.debug_struct("Key")
            .field("position", &self.position)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kty", &self.kty)
            .field("bits", &self.bits)
            .finish()
    }
}

fn hmac_ok<M: Mac + hmac::digest::KeyInit>(key: &[u8], signed: &[u8], signature: &[u8]) -> bool {
    match <M as hmac::digest::KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(signed);
            // Constant-time comparison (hmac's verify_slice).
            mac.verify_slice(signature).is_ok()
        }
        Err(_) => false,
    }
}

/// One RSASSA-PKCS1-v1_5 check with hash `$hash` (of sha2 0.11, which rsa 0.10 takes).
macro_rules! rsa_ok {
    ($key:expr, $hash:ty, $signed:expr, $signature:expr) => {{
        use sha2_rsa::Digest as _;
        let hashed = <$hash>::digest($signed);
        $key.verify(rsa::Pkcs1v15Sign::new::<$hash>(), &hashed, $signature)
            .is_ok()
    }};
}

impl Key {
    /// Whether `signature` is this key's signature of `signed` (the token's `header.payload`).
    /// The caller has checked that the token's `alg` is this key's.
    pub fn verify(&self, signed: &[u8], signature: &[u8]) -> bool {
        use p256::ecdsa::signature::Verifier as _;
        match (&self.verifier, self.alg) {
            (Verifier::Hmac(k), Alg::HS256) => hmac_ok::<Hmac<Sha256>>(k, signed, signature),
            (Verifier::Hmac(k), Alg::HS384) => hmac_ok::<Hmac<Sha384>>(k, signed, signature),
            (Verifier::Hmac(k), Alg::HS512) => hmac_ok::<Hmac<Sha512>>(k, signed, signature),
            // PKCS#1 v1.5 (RFC 7518, 3.3); the crate checks the signature's length against the
            // modulus.  (rsa 0.10 is constant-time, and we only ever verify: the advisory of
            // earlier releases, RUSTSEC-2023-0071, concerned private-key operations.)
            (Verifier::Rsa(k), Alg::RS256) => rsa_ok!(k, sha2_rsa::Sha256, signed, signature),
            (Verifier::Rsa(k), Alg::RS384) => rsa_ok!(k, sha2_rsa::Sha384, signed, signature),
            (Verifier::Rsa(k), Alg::RS512) => rsa_ok!(k, sha2_rsa::Sha512, signed, signature),
            // JWS ECDSA signatures are R || S, fixed length (RFC 7518, 3.4), not DER.
            (Verifier::P256(k), Alg::ES256) => p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(signed, &s).is_ok()),
            (Verifier::P384(k), Alg::ES384) => p384::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(signed, &s).is_ok()),
            // Strict verification: no small-order keys, no malleable signatures (RFC 8032 5.1.7).
            (Verifier::Ed25519(k), Alg::EdDSA) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_strict(signed, &s).is_ok()),
            _ => false,
        }
    }
}

/// A key of the setting that is not used, and why (unknown type, curve or algorithm; not for
/// signatures).  Reported by `tenancy.jwt_keys()`.
#[derive(Debug, PartialEq, Eq)]
pub struct Skipped {
    pub index: usize,
    pub kid: Option<String>,
    pub kty: String,
    pub why: &'static str,
}

/// Where the keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Secret,
    Jwk,
    Jwks,
}

/// The parsed setting.
#[derive(Debug)]
pub struct KeySet {
    pub form: Form,
    pub keys: Vec<Key>,
    pub skipped: Vec<Skipped>,
}

/// Why a setting cannot be used.  Never holds key material.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Object = serde_json::Map<String, serde_json::Value>;

/// One key's JSON members, read without ever echoing a value into a message.
struct Member<'a> {
    jwk: &'a Object,
    /// "key 2 (kid \"abc\")", for messages.
    name: String,
}

impl Member<'_> {
    fn err(&self, what: impl std::fmt::Display) -> ConfigError {
        ConfigError(format!("tenancy.jwt_secret: {}: {what}", self.name))
    }

    fn string(&self, field: &str) -> Result<Option<&str>, ConfigError> {
        match self.jwk.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(format_args!("\"{field}\" is not a string"))),
        }
    }

    fn bytes(&self, field: &str) -> Result<Zeroizing<Vec<u8>>, ConfigError> {
        let s = self
            .string(field)?
            .ok_or_else(|| self.err(format_args!("\"{field}\" is missing")))?;
        // RFC 7517: base64url without padding; tolerate padding, as several generators add it.
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map(Zeroizing::new)
            .map_err(|_| self.err(format_args!("\"{field}\" is not base64url")))
    }
}

/// The members of a JWK that hold secret material: an `oct` key's `k`, a private key's `d` and
/// RSA's CRT parameters (RFC 7518, 6).
const SECRET_MEMBERS: [&str; 8] = ["k", "d", "p", "q", "dp", "dq", "qi", "oth"];

/// Whether a value of `tenancy.jwt_secret` holds secret key material: anything but JSON that is
/// a JWK or JWKS of public keys only (an unreadable value counts as secret).  Decides where the
/// value may be stored ([`super::backend::check_jwt_secret`]).
pub fn holds_secret(setting: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(setting) else {
        return true;
    };
    let Some(top) = value.as_object() else {
        return true;
    };
    let keys: Vec<&serde_json::Value> = match top.get("keys") {
        Some(serde_json::Value::Array(items)) => items.iter().collect(),
        Some(_) => return true,
        None => vec![&value],
    };
    keys.iter().any(|k| {
        k.as_object()
            .is_none_or(|o| SECRET_MEMBERS.iter().any(|m| o.contains_key(*m)))
    })
}

/// Why a secret string is refused although long enough: it looks like a key or like JSON, so it
/// is most likely a JWK, a JWKS or a PEM key that was meant to be read as one.  Used as an HMAC
/// secret, a *public* key would let anyone who knows it sign tokens.
fn looks_like_a_key(setting: &str) -> Option<&'static str> {
    let t = setting.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if t.starts_with('{') {
        return Some("it starts with a byte order mark or other characters before {");
    }
    if t.starts_with('[') || t.starts_with('"') {
        return Some("it is JSON but not a JWK or a JWKS object");
    }
    if setting.contains("\"kty\"") || setting.contains("-----BEGIN") {
        return Some("it contains a key (\"kty\" or -----BEGIN)");
    }
    // A public key as base64 DER without its PEM lines (SubjectPublicKeyInfo: a SEQUENCE naming
    // rsaEncryption, id-ecPublicKey or Ed25519).
    const KEY_OIDS: [&[u8]; 3] = [
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        ],
        &[0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01],
        &[0x06, 0x03, 0x2b, 0x65, 0x70],
    ];
    let compact: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(&compact) {
        if der.first() == Some(&0x30)
            && KEY_OIDS
                .iter()
                .any(|oid| der.windows(oid.len()).any(|w| w == *oid))
        {
            return Some("it is a public key (base64 DER)");
        }
    }
    None
}

/// Parse the value of `tenancy.jwt_secret`.  A value whose first non-blank character is `{` is
/// JSON (a JWK, or a JWKS when it has `keys`), as PostgREST reads it; anything else is an HS256
/// secret of at least 32 bytes, used as it is.
pub fn parse(setting: &str) -> Result<KeySet, ConfigError> {
    if !setting.trim_start().starts_with('{') {
        if let Some(why) = looks_like_a_key(setting) {
            return Err(ConfigError(format!(
                "tenancy.jwt_secret is not used as an HS256 secret: {why} (a JWK or a JWKS must start with {{)"
            )));
        }
        if setting.len() < MIN_SECRET_BYTES {
            return Err(ConfigError(format!(
                "tenancy.jwt_secret must be at least {MIN_SECRET_BYTES} bytes"
            )));
        }
        return Ok(KeySet {
            form: Form::Secret,
            keys: vec![Key {
                position: 1,
                kid: None,
                alg: Alg::HS256,
                kty: "oct",
                bits: setting.len() * 8,
                verifier: Verifier::Hmac(Zeroizing::new(setting.as_bytes().to_vec())),
            }],
            skipped: Vec::new(),
        });
    }
    // serde_json's own messages can quote a value: none of them reaches ours.
    let value: serde_json::Value = serde_json::from_str(setting).map_err(|_| {
        ConfigError(
            "tenancy.jwt_secret starts with { but is not valid JSON (a JWK or a JWKS)".into(),
        )
    })?;
    let serde_json::Value::Object(top) = value else {
        return Err(ConfigError(
            "tenancy.jwt_secret is JSON but not an object (a JWK or a JWKS)".into(),
        ));
    };
    let (form, list): (Form, Vec<&Object>) = match top.get("keys") {
        Some(serde_json::Value::Array(items)) => {
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item {
                    serde_json::Value::Object(o) => list.push(o),
                    _ => {
                        return Err(ConfigError(format!(
                            "tenancy.jwt_secret: key {} of \"keys\" is not a JSON object",
                            i + 1
                        )))
                    }
                }
            }
            (Form::Jwks, list)
        }
        Some(_) => {
            return Err(ConfigError(
                "tenancy.jwt_secret: \"keys\" is not an array (a JWKS is {\"keys\": [...]})".into(),
            ))
        }
        None => (Form::Jwk, vec![&top]),
    };
    if list.len() > MAX_KEYS {
        return Err(ConfigError(format!(
            "tenancy.jwt_secret holds {} keys; at most {MAX_KEYS} are accepted",
            list.len()
        )));
    }
    let mut set = KeySet {
        form,
        keys: Vec::new(),
        skipped: Vec::new(),
    };
    for (i, jwk) in list.into_iter().enumerate() {
        let kid = match jwk.get("kid") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(ConfigError(format!(
                    "tenancy.jwt_secret: key {}: \"kid\" is not a string",
                    i + 1
                )))
            }
        };
        let member = Member {
            jwk,
            name: match &kid {
                // A kid is an identifier, public by design (it is in every token's header).
                Some(k) => format!("key {} (kid {k:?})", i + 1),
                None => format!("key {}", i + 1),
            },
        };
        match parse_key(&member, kid.clone())? {
            Ok(key) => set.keys.push(Key {
                position: i + 1,
                ..key
            }),
            Err((kty, why)) => set.skipped.push(Skipped {
                index: i + 1,
                kid,
                kty,
                why,
            }),
        }
    }
    if set.keys.is_empty() {
        return Err(ConfigError(format!(
            "tenancy.jwt_secret holds no key usable to verify signatures ({} skipped; see tenancy.jwt_keys())",
            set.skipped.len()
        )));
    }
    Ok(set)
}

/// One JWK: a usable key, a key to skip (with its `kty` and why), or an error (a key of a kind we
/// use that is malformed or too weak: a configuration mistake, never silently ignored).
type Parsed = Result<Key, (String, &'static str)>;

fn parse_key(m: &Member, kid: Option<String>) -> Result<Parsed, ConfigError> {
    let kty = m
        .string("kty")?
        .ok_or_else(|| m.err("\"kty\" is missing"))?
        .to_string();
    let skip = |why| Ok(Err((kty.clone(), why)));
    // RFC 7517 4.2 and 4.3: a key meant for encryption, or whose operations exclude
    // verification, is not used for signatures.
    if m.string("use")?.is_some_and(|u| u != "sig") {
        return skip("\"use\" is not \"sig\"");
    }
    match m.jwk.get("key_ops") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Array(ops)) => {
            if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                return skip("\"key_ops\" does not include \"verify\"");
            }
        }
        Some(_) => return Err(m.err("\"key_ops\" is not an array")),
    }
    let alg = m.string("alg")?;
    let (alg, verifier, bits) = match kty.as_str() {
        "oct" => {
            let (alg, min) = match alg {
                None | Some("HS256") => (Alg::HS256, 32),
                Some("HS384") => (Alg::HS384, 48),
                Some("HS512") => (Alg::HS512, 64),
                Some(_) => return skip("unsupported \"alg\" for an oct key"),
            };
            let k = m.bytes("k")?;
            if k.len() < min {
                return Err(m.err(format_args!(
                    "an {} key must be at least {min} bytes (RFC 7518, 3.2)",
                    alg.name()
                )));
            }
            let bits = k.len() * 8;
            (alg, Verifier::Hmac(k), bits)
        }
        "RSA" => {
            let alg = match alg {
                None | Some("RS256") => Alg::RS256,
                Some("RS384") => Alg::RS384,
                Some("RS512") => Alg::RS512,
                Some(_) => return skip("unsupported \"alg\" for an RSA key (RS256, RS384, RS512)"),
            };
            let n = rsa::BoxedUint::from_be_slice_vartime(&m.bytes("n")?);
            let e = rsa::BoxedUint::from_be_slice_vartime(&m.bytes("e")?);
            let bits = n.bit_width_vartime() as usize;
            if !RSA_BITS.contains(&bits) {
                return Err(m.err(format_args!(
                    "an RSA modulus of {bits} bits; {} to {} are accepted",
                    RSA_BITS.start(),
                    RSA_BITS.end()
                )));
            }
            let key = rsa::PublicKey::new_with_size_limits(n, e, RSA_BITS)
                .map_err(|_| m.err("not a valid RSA public key (\"n\" or \"e\")"))?;
            (alg, Verifier::Rsa(key), bits)
        }
        "EC" => {
            let crv = m
                .string("crv")?
                .ok_or_else(|| m.err("\"crv\" is missing"))?;
            let want = match crv {
                "P-256" => Alg::ES256,
                "P-384" => Alg::ES384,
                _ => return skip("unsupported curve (P-256, P-384)"),
            };
            if alg.is_some_and(|a| a != want.name()) {
                return Err(m.err(format_args!(
                    "\"alg\" does not match curve {crv} ({})",
                    want.name()
                )));
            }
            let size = if want == Alg::ES256 { 32 } else { 48 };
            // RFC 7518 6.2.1.2: the coordinates are full-length; some generators (PyJWT 2.6)
            // drop leading zero bytes, which change nothing, so they are put back.
            let coordinate = |name: &str| -> Result<Vec<u8>, ConfigError> {
                let b = m.bytes(name)?;
                if b.is_empty() || b.len() > size {
                    return Err(m.err(format_args!(
                        "\"{name}\" must be {size} bytes for {crv} (it is {})",
                        b.len()
                    )));
                }
                let mut padded = vec![0u8; size - b.len()];
                padded.extend_from_slice(&b);
                Ok(padded)
            };
            let (x, y) = (coordinate("x")?, coordinate("y")?);
            let invalid = || m.err(format_args!("not a point of {crv}"));
            let verifier = if want == Alg::ES256 {
                let point = p256::EncodedPoint::from_affine_coordinates(
                    p256::FieldBytes::from_slice(&x),
                    p256::FieldBytes::from_slice(&y),
                    false,
                );
                Verifier::P256(
                    p256::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|_| invalid())?,
                )
            } else {
                let point = p384::EncodedPoint::from_affine_coordinates(
                    p384::FieldBytes::from_slice(&x),
                    p384::FieldBytes::from_slice(&y),
                    false,
                );
                Verifier::P384(
                    p384::ecdsa::VerifyingKey::from_encoded_point(&point).map_err(|_| invalid())?,
                )
            };
            (want, verifier, if want == Alg::ES256 { 256 } else { 384 })
        }
        "OKP" => {
            match m.string("crv")? {
                Some("Ed25519") => {}
                Some(_) => return skip("unsupported curve (Ed25519)"),
                None => return Err(m.err("\"crv\" is missing")),
            }
            if alg.is_some_and(|a| a != "EdDSA" && a != "Ed25519") {
                return Err(m.err("\"alg\" does not match curve Ed25519 (EdDSA)"));
            }
            let x: [u8; 32] = m
                .bytes("x")?
                .as_slice()
                .try_into()
                .map_err(|_| m.err("not an Ed25519 public key"))?;
            let key = ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| m.err("not an Ed25519 public key"))?;
            if key.is_weak() {
                return Err(m.err("a weak (small-order) Ed25519 key"));
            }
            (Alg::EdDSA, Verifier::Ed25519(key), 256)
        }
        _ => return skip("unsupported \"kty\" (oct, RSA, EC, OKP)"),
    };
    Ok(Ok(Key {
        position: 0,
        kid,
        alg,
        kty: match kty.as_str() {
            "oct" => "oct",
            "RSA" => "RSA",
            "EC" => "EC",
            _ => "OKP",
        },
        bits,
        verifier,
    }))
}
