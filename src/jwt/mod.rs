//! JWT verification for `tenancy.pre_request()`: when `tenancy.jwt_secret` is set, the claims come
//! from the request's own `Authorization: Bearer <JWT>` header (in `request.headers`), after its
//! signature is checked under that setting's keys, instead of from `request.jwt.claims`.  Any role
//! can set those two request settings itself, but only the holder of a signing key can sign a
//! token: a role with direct SQL access can no longer claim to be another user.
//!
//! * [`keys`]: the setting as PostgREST's `jwt-secret` takes it (a secret, a JWK, a JWKS); each
//!   key fixes its algorithm, so a token's `alg` never chooses how its signature is checked.
//! * this module: the compact JWS form, the key the token's `kid` and `alg` select, the signature
//!   ([`verify_signature`]), then the claims as PostgREST checks them ([`check_claims`]): `exp`
//!   required, `nbf` and `iat` honoured, 60 s of leeway for clock skew, `aud` and `iss` when the
//!   settings ask.  Pure functions (no server), unit-tested below.
//! * [`claims`]: who the claims name (user and tenant), from a verified token or from
//!   `request.jwt.claims`.
//! * [`cache`]: tokens whose signature was verified, per backend, by digest.
//! * [`backend`]: the glue `pre_request` calls (settings, the caches, SQLSTATEs) and
//!   `tenancy.jwt_keys()`.
use base64::Engine;
use serde::Deserialize as _;
use std::borrow::Cow;

pub mod backend;
pub mod cache;
pub mod claims;
pub mod keys;

pub use keys::{Alg, KeySet};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY: i64 = 60;

/// Why a token was refused.  Never contains any part of the token (not even its `kid`).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Malformed(&'static str),
    /// No key of the setting is for the token's `alg` (among the keys its `kid` selects).
    Algorithm,
    /// The token names a `kid` no key of the setting has.
    UnknownKey,
    Signature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    Audience,
    Issuer,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(what) => write!(f, "malformed token: {what}"),
            Refusal::Algorithm => {
                f.write_str("the token's alg is not the algorithm of a key in tenancy.jwt_secret")
            }
            Refusal::UnknownKey => f.write_str("no key in tenancy.jwt_secret has the token's kid"),
            Refusal::Signature => f.write_str("the signature does not match"),
            Refusal::Expired => f.write_str("the token has expired"),
            Refusal::NotYetValid => f.write_str("the token is not valid yet (nbf)"),
            Refusal::IssuedInFuture => f.write_str("the token is issued in the future (iat)"),
            Refusal::Audience => f.write_str("the token's aud is not tenancy.jwt_aud"),
            Refusal::Issuer => f.write_str("the token's iss is not tenancy.jwt_iss"),
        }
    }
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<std::borrow::Cow<'a, str>>,
    /// RFC 7515 4.1.11: extensions the verifier must understand.  We understand none, so a token
    /// that lists any is refused.  (`jku`, `x5u`, `jwk`: keys a token names or carries itself are
    /// never fetched nor trusted; only `tenancy.jwt_secret`'s are.)
    #[serde(default, deserialize_with = "present")]
    crit: Option<()>,
}

/// `Some` for a member that is there, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<()>, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| Some(()))
}

#[derive(serde::Deserialize)]
struct Times<'a> {
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    #[serde(borrow)]
    aud: Option<Audience<'a>>,
    #[serde(borrow)]
    iss: Option<Issuer<'a>>,
}

/// `aud`: one string or an array of them (RFC 7519, 4.1.3); anything else is kept as `Other`, so
/// that it refuses the token only where an audience is expected.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(#[serde(borrow)] std::borrow::Cow<'a, str>),
    Many(#[serde(borrow)] Vec<std::borrow::Cow<'a, str>>),
    Other(serde::de::IgnoredAny),
}

/// `iss`: a string; anything else is `Other` (see [`Audience`]).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Issuer<'a> {
    Is(#[serde(borrow)] std::borrow::Cow<'a, str>),
    Other(serde::de::IgnoredAny),
}

/// What the token must also say, when the settings ask for it (`tenancy.jwt_aud`,
/// `tenancy.jwt_iss`): the audience among its `aud`, the issuer as its `iss`.  A token without
/// the claim is refused (PostgREST accepts a token without `aud`; a token minted for another
/// service of the same key usually lacks it, so we do not).
#[derive(Default, Clone, Copy)]
pub struct Expected<'a> {
    pub aud: Option<&'a str>,
    pub iss: Option<&'a str>,
}

/// The longest token read (a larger one is refused before any decoding).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The bearer token of a PostgREST `request.headers` JSON object, read exactly as PostgREST
/// reads its header (its `headerJWT`): the `authorization` member (PostgREST lowercases header
/// names; so does the `x-tenant-id` lookup), split on single spaces, the scheme `Bearer` or
/// `bearer`, the token the second field.  So a header PostgREST takes for no token (another
/// spelling, two spaces, a leading space) is no token here either: the database never checks a
/// token PostgREST did not.  Borrowed from `headers` unless the JSON string had escapes.
pub fn bearer_token(headers: &str) -> Option<Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct Headers<'a> {
        #[serde(borrow, default)]
        authorization: Option<Cow<'a, str>>,
    }
    fn token(value: &str) -> Option<&str> {
        let mut fields = value.split(' ');
        match (fields.next(), fields.next()) {
            (Some("Bearer" | "bearer"), Some(t)) if !t.is_empty() => Some(t),
            _ => None,
        }
    }
    // serde reads a struct from a JSON array too (fields by position): headers are an object.
    if !headers.trim_start().starts_with('{') {
        return None;
    }
    match serde_json::from_str::<Headers>(headers)
        .ok()?
        .authorization?
    {
        Cow::Borrowed(v) => token(v).map(Cow::Borrowed),
        Cow::Owned(v) => token(&v).map(|t| Cow::Owned(t.to_owned())),
    }
}

/// Check a compact JWS's signature under `keys`: its payload (the claims, JSON text), or why not.
/// The claims are not checked here (see [`check_claims`]).
///
/// The key: the token's `alg` must be a known algorithm; the candidates are the keys with the
/// token's `kid` (and keys without a `kid`, such as a plain secret), or every key when the token
/// has no `kid` (PostgREST tries each); of those, the keys *of* that algorithm are tried.  So the
/// algorithm is always the key's: an RSA or EC public key is never an HMAC secret.
pub fn verify_signature(token: &str, keys: &KeySet) -> Result<String, Refusal> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Refusal::Malformed("longer than 64 kB"));
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed("not three dot-separated parts"));
    };
    let signed = &token.as_bytes()[..header_b64.len() + 1 + payload.len()];
    let header_json = b64
        .decode(header_b64)
        .map_err(|_| Refusal::Malformed("header is not base64url"))?;
    let header: Header = serde_json::from_slice(&header_json)
        .map_err(|_| Refusal::Malformed("header is not a JSON object"))?;
    if header.crit.is_some() {
        return Err(Refusal::Malformed(
            "crit header parameters are not supported",
        ));
    }
    let alg = header
        .alg
        .as_deref()
        .and_then(Alg::from_name)
        .ok_or(Refusal::Algorithm)?;
    let kid = header.kid.as_deref();
    let mut candidates = keys
        .keys
        .iter()
        .filter(|k| match (kid, k.kid.as_deref()) {
            (Some(want), Some(has)) => want == has,
            _ => true,
        })
        .peekable();
    if candidates.peek().is_none() {
        return Err(Refusal::UnknownKey);
    }
    let mut of_alg = candidates.filter(|k| k.alg == alg).peekable();
    if of_alg.peek().is_none() {
        return Err(Refusal::Algorithm);
    }
    let signature = b64
        .decode(signature)
        .map_err(|_| Refusal::Malformed("signature is not base64url"))?;
    if !of_alg.any(|k| k.verify(signed, &signature)) {
        return Err(Refusal::Signature);
    }
    // Only a signed payload is decoded.
    let payload = b64
        .decode(payload)
        .map_err(|_| Refusal::Malformed("payload is not base64url"))?;
    String::from_utf8(payload).map_err(|_| Refusal::Malformed("payload is not UTF-8"))
}

/// The claims pg_tenancy checks, read from a verified payload once (and kept with it in the
/// cache, so that a cached token's claims are checked again without parsing it again).
#[derive(Debug, Clone, PartialEq)]
pub struct Claims {
    pub exp: f64,
    nbf: Option<f64>,
    iat: Option<f64>,
    aud: Option<Vec<String>>,
    /// `aud` present but neither a string nor an array of strings.
    aud_other: bool,
    iss: Option<String>,
    iss_other: bool,
}

impl Claims {
    /// Read `exp` (required), `nbf`, `iat`, `aud` and `iss` from a payload.
    pub fn parse(payload: &str) -> Result<Claims, Refusal> {
        let times: Times = serde_json::from_str(payload)
            .map_err(|_| Refusal::Malformed("payload is not a JSON object of claims"))?;
        let exp = times.exp.ok_or(Refusal::Malformed("no exp claim"))?;
        let (aud, aud_other) = match times.aud {
            None => (None, false),
            Some(Audience::One(a)) => (Some(vec![a.into_owned()]), false),
            Some(Audience::Many(list)) => {
                (Some(list.into_iter().map(Cow::into_owned).collect()), false)
            }
            Some(Audience::Other(_)) => (None, true),
        };
        let (iss, iss_other) = match times.iss {
            None => (None, false),
            Some(Issuer::Is(i)) => (Some(i.into_owned()), false),
            Some(Issuer::Other(_)) => (None, true),
        };
        Ok(Claims {
            exp,
            nbf: times.nbf,
            iat: times.iat,
            aud,
            aud_other,
            iss,
            iss_other,
        })
    }

    /// Check them at `now` (Unix seconds), as PostgREST does: `exp` not past, `nbf` reached,
    /// `iat` not in the future (each with [`LEEWAY`]), `aud` and `iss` when `expected` says.
    pub fn check(&self, now: i64, expected: Expected) -> Result<(), Refusal> {
        if (now - LEEWAY) as f64 >= self.exp {
            return Err(Refusal::Expired);
        }
        if self.nbf.is_some_and(|nbf| ((now + LEEWAY) as f64) < nbf) {
            return Err(Refusal::NotYetValid);
        }
        if self.iat.is_some_and(|iat| ((now + LEEWAY) as f64) < iat) {
            return Err(Refusal::IssuedInFuture);
        }
        if let Some(want) = expected.aud {
            let ok = !self.aud_other
                && self
                    .aud
                    .as_ref()
                    .is_some_and(|list| list.iter().any(|a| a == want));
            if !ok {
                return Err(Refusal::Audience);
            }
        }
        if let Some(want) = expected.iss {
            if self.iss_other || self.iss.as_deref() != Some(want) {
                return Err(Refusal::Issuer);
            }
        }
        Ok(())
    }
}

/// A token whose signature was verified, its payload read once: the claims checked at every use,
/// and who it names (or why that cannot be read), for `pre_request`.
#[derive(Debug)]
pub struct Verified {
    pub claims: Claims,
    pub identity: Result<claims::ClaimedIdentity, String>,
    /// The payload's length, what the cache counts.
    pub size: usize,
}

impl Verified {
    /// Read a verified payload whose claims passed: `claims` from [`check_claims`].
    pub fn new(payload: &str, claims: Claims) -> Verified {
        Verified {
            claims,
            identity: claims::claimed(payload),
            size: payload.len(),
        }
    }
}

/// Check a verified payload's claims at `now`: [`Claims::parse`], then [`Claims::check`].
pub fn check_claims(payload: &str, now: i64, expected: Expected) -> Result<Claims, Refusal> {
    let claims = Claims::parse(payload)?;
    claims.check(now, expected)?;
    Ok(claims)
}

/// Both checks: the payload of a token whose signature and claims are good (what
/// [`backend::verified_claims`] does around its cache).
#[cfg(test)]
pub fn verify(token: &str, keys: &KeySet, now: i64, expected: Expected) -> Result<String, Refusal> {
    let payload = verify_signature(token, keys)?;
    check_claims(&payload, now, expected)?;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    /// The old entry point, for the HS256 cases below: a plain secret string.
    fn verify_hs256(
        token: &str,
        secret: &[u8],
        now: i64,
        expected: Expected,
    ) -> Result<String, Refusal> {
        let keys = keys::parse(std::str::from_utf8(secret).unwrap()).unwrap();
        verify(token, &keys, now, expected)
    }

    const SECRET: &[u8] = b"super-secret-jwt-token-with-at-least-32-characters-long";
    const NOW: i64 = 1_790_000_000;

    fn sign(header: &str, payload: &str, secret: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let body = format!("{}.{}", b64.encode(header), b64.encode(payload));
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(body.as_bytes());
        format!("{body}.{}", b64.encode(mac.finalize().into_bytes()))
    }

    fn claims(exp: i64) -> String {
        format!(
            r#"{{"sub":"00000000-0000-4000-8000-0000000000a1","role":"authenticated","exp":{exp}}}"#
        )
    }

    const HS256: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

    /// Tokens signed by PyJWT and `cryptography` (src/jwt/vectors.json): each good one verifies,
    /// each bad one is refused, and no refusal says anything of the token.
    #[test]
    fn independently_signed_tokens() {
        let v: serde_json::Value = serde_json::from_str(include_str!("vectors.json")).unwrap();
        let keys = keys::parse(&v["jwks"].to_string()).unwrap();
        assert_eq!(keys.keys.len(), 5);
        assert_eq!(
            keys.skipped.len(),
            1,
            "the encryption key is listed, not used"
        );
        let expected = Expected {
            aud: Some("authenticated"),
            iss: Some("https://project.supabase.test/auth/v1"),
        };
        let now = 1_790_000_000;
        let mut seen = std::collections::HashSet::new();
        for case in v["cases"].as_array().unwrap() {
            let (name, token) = (
                case["name"].as_str().unwrap(),
                case["token"].as_str().unwrap(),
            );
            let got = verify(token, &keys, now, expected);
            if case["want"] == "ok" {
                let payload = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(
                    payload.contains("00000000-0000-4000-8000-0000000000a4"),
                    "{name}"
                );
            } else {
                let why = got.expect_err(name);
                let message = why.to_string();
                for part in token.split('.').filter(|p| p.len() > 3) {
                    assert!(!message.contains(part), "{name}: {message}");
                }
                assert!(
                    !message.contains("ec-") && !message.contains("rsa-"),
                    "{name}: {message}"
                );
                seen.insert(std::mem::discriminant(&why));
            }
        }
        // The refusals are of every kind, not one catch-all.
        assert!(seen.len() >= 9, "{} kinds of refusal", seen.len());
        // A secret string: HS256 only, under that secret.
        let secret = keys::parse(v["secret"].as_str().unwrap()).unwrap();
        let token = v["secret_token"].as_str().unwrap();
        assert!(verify(token, &secret, now, Expected::default()).is_ok());
        assert_eq!(
            verify(token, &keys, now, Expected::default()),
            Err(Refusal::Signature)
        );
        // The same tokens under the set reduced to one key: the others' tokens find no key.
        let only_ec = serde_json::json!({"keys": [v["jwks"]["keys"][0]]}).to_string();
        let only_ec = keys::parse(&only_ec).unwrap();
        let rs = &v["cases"][2];
        assert_eq!(rs["name"], "RS256 with kid");
        assert_eq!(
            verify(rs["token"].as_str().unwrap(), &only_ec, now, expected),
            Err(Refusal::UnknownKey)
        );
        let rs_no_kid = &v["cases"][3];
        assert_eq!(
            verify(
                rs_no_kid["token"].as_str().unwrap(),
                &only_ec,
                now,
                expected
            ),
            Err(Refusal::Algorithm)
        );
    }

    #[test]
    fn where_a_value_may_be_stored() {
        let public = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"},{"kty":"RSA","n":"a","e":"AQAB"}]}"#;
        assert!(!keys::holds_secret(public.as_bytes()));
        assert!(!keys::holds_secret(
            br#"{"kty":"OKP","crv":"Ed25519","x":"a"}"#
        ));
        for secret in [
            "a-plain-hs256-secret-of-at-least-32-bytes",
            r#"{"kty":"oct","k":"c2VjcmV0"}"#,
            r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}"#,
            r#"{"keys":[{"kty":"RSA","n":"a","e":"AQAB"},{"kty":"oct","use":"enc","k":"x"}]}"#,
            r#"{"keys":[5]}"#,
            r#"{"keys":{}}"#,
            "{not json",
            "[]",
        ] {
            assert!(keys::holds_secret(secret.as_bytes()), "{secret}");
        }
    }

    /// A value that is a key but does not start with `{` would otherwise be an HMAC secret, and
    /// a public key as an HMAC secret lets anyone sign (an attack found in review).
    #[test]
    fn key_text_is_never_an_hmac_secret() {
        let jwk = r#"{"kty":"EC","crv":"P-256","x":"m6uyG-8v_gyjooA7MH-cbKfHUUkaNRVQcFRt8cjbM4Y","y":"lt7GnTvJk7t_iCk8cL4mzBwyzrC01l3Db91RHOf4P9w"}"#;
        for value in [
            format!("\u{feff}{jwk}"),
            format!("[{jwk}]"),
            serde_json::to_string(jwk).unwrap(),
            "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEm6uyG+8v/gyjooA7MH+cbKfHUUka\n-----END PUBLIC KEY-----".to_string(),
            format!("kid=1 {jwk}"),
            // The same P-256 key, and an RSA one, as bare base64 DER (no PEM lines).
            "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEm6uyG+8v/gyjooA7MH+cbKfHUUkaNRVQcFRt8cjbM4aW3sadO8mTu3+IKTxwvibMHDLOsLTWXcNv3VEc5/g/3A==".to_string(),
            "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW/VDL5AaWTg0nLVkjRo9z+40RQzuVaE8AkAFmxZzow3x+VJYKdjykkJ0iT9wCS0DRTXu269V264Vf/3jvredZiKRkgwlL9xNAwxXFg0x/XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC+9aGVd+Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmwIDAQAB".to_string(),
        ] {
            let e = keys::parse(&value).expect_err(&value).0;
            assert!(e.contains("not used as an HS256 secret"), "{value}: {e}");
        }
    }

    /// PyJWT 2.6 drops leading zero bytes of EC coordinates: such a key is read as it means.
    #[test]
    fn a_numeric_secret_is_still_a_secret() {
        // PostgREST takes any string; only key-looking text is refused.
        assert!(keys::parse("123456789012345678901234567890123456").is_ok());
    }

    #[test]
    fn short_ec_coordinates_are_padded() {
        let jwk = r#"{"kty":"EC","crv":"P-256","x":"BPBrCwVRCBjUh_ieIO86xJJUZfTOqkk89Y-874bn9g","y":"zIZT6TGv9qZKQIAc7loodVq0cCVJ5UKH3MClOtuN-6E"}"#;
        let token = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwiZXhwIjo0MTAyNDQ0ODAwfQ._jLO9t6qOyuy1lYPhG_pw4FGuSyOebq6CzjctwF9Wx_XwCBYtzKtwSfz8QAdBlCCfnGW8TB_1DUs2LSqu1NUtQ";
        let keys = keys::parse(jwk).unwrap();
        assert!(verify(token, &keys, NOW, Expected::default()).is_ok());
        let long = jwk.replace("\"x\":\"", "\"x\":\"AAAA");
        assert!(keys::parse(&long)
            .unwrap_err()
            .0
            .contains("must be 32 bytes"));
    }

    #[test]
    fn settings_that_cannot_be_used_say_why_and_never_what() {
        let secret_k = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I";
        let ec = r#"{"kty":"EC","crv":"P-256","x":"m6uyG-8v_gyjooA7MH-cbKfHUUkaNRVQcFRt8cjbM4Y","y":"lt7GnTvJk7t_iCk8cL4mzBwyzrC01l3Db91RHOf4P9w"}"#;
        let bad_point = ec.replace("m6uy", "m6uz");
        let cases: Vec<(String, &str)> = vec![
            ("short".into(), "must be at least 32 bytes"),
            ("{not json".into(), "not valid JSON"),
            (r#"{"keys": {}}"#.into(), "\"keys\" is not an array"),
            (
                r#"{"keys": [5]}"#.into(),
                "key 1 of \"keys\" is not a JSON object",
            ),
            (r#"{"keys": []}"#.into(), "no key usable"),
            (r#"{"k": "abc"}"#.into(), "\"kty\" is missing"),
            (
                format!(r#"{{"kty":"oct","k":"{}"}}"#, &secret_k[..20]),
                "at least 32 bytes",
            ),
            (
                format!(r#"{{"kty":"oct","alg":"HS512","k":"{secret_k}"}}"#),
                "at least 64 bytes",
            ),
            (r#"{"kty":"oct","k":"!!"}"#.into(), "\"k\" is not base64url"),
            (r#"{"kty":"oct","k":5}"#.into(), "\"k\" is not a string"),
            (
                r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#.into(),
                "RSA modulus of 17 bits",
            ),
            (bad_point, "not a point of P-256"),
            (
                ec.replace("\"kty\"", "\"alg\":\"ES384\",\"kty\""),
                "does not match curve",
            ),
            (
                r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#.into(),
                "not an Ed25519 public key",
            ),
            (
                r#"{"kty":"oct","kid":7,"k":"x"}"#.into(),
                "\"kid\" is not a string",
            ),
            (
                r#"{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}"#.into(),
                "no key usable",
            ),
            (
                r#"{"keys":[{"kty":"oct","use":"enc","k":"x"}]}"#.into(),
                "no key usable",
            ),
            (
                format!(r#"{{"keys":[{}]}}"#, vec![ec; 33].join(",")),
                "at most 32",
            ),
        ];
        for (setting, want) in cases {
            let e = keys::parse(&setting).expect_err(&setting).0;
            assert!(e.contains(want), "{setting}: {e}");
            assert!(!e.contains(&secret_k[..16]) && !e.contains("m6uy"), "{e}");
        }
        // Skipped, not refused: a key of a kind we do not use beside one we do.
        let set = keys::parse(&format!(
            r#"{{"keys":[{{"kty":"EC","crv":"secp256k1","kid":"k1"}},{ec},{{"kty":"oct","key_ops":["sign"],"k":"x"}}]}}"#
        ))
        .unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(
            set.skipped
                .iter()
                .map(|s| (s.index, s.why))
                .collect::<Vec<_>>(),
            vec![
                (1, "unsupported curve (P-256, P-384)"),
                (3, "\"key_ops\" does not include \"verify\"")
            ]
        );
        assert!(
            !format!("{set:?}").contains("m6uy"),
            "Debug shows no material"
        );
    }

    #[test]
    fn audience_and_issuer_are_checked_only_when_expected() {
        let payload = |aud: &str, iss: &str| {
            format!(
                r#"{{"sub":"x","exp":{},"aud":{aud},"iss":{iss}}}"#,
                NOW + 60
            )
        };
        let want = Expected {
            aud: Some("authenticated"),
            iss: Some("https://auth.example"),
        };
        let good = r#""https://auth.example""#;
        for (aud, iss, with_want) in [
            (r#""authenticated""#, good, Ok(())),
            (r#"["other", "authenticated"]"#, good, Ok(())),
            (r#""other""#, good, Err(Refusal::Audience)),
            (r#"["other"]"#, good, Err(Refusal::Audience)),
            ("5", good, Err(Refusal::Audience)),
            ("[1, 2]", good, Err(Refusal::Audience)),
            ("null", good, Err(Refusal::Audience)),
            (
                r#""authenticated""#,
                r#""https://evil.example""#,
                Err(Refusal::Issuer),
            ),
            (r#""authenticated""#, r#"{"x": 1}"#, Err(Refusal::Issuer)),
        ] {
            let t = sign(HS256, &payload(aud, iss), SECRET);
            let got = verify_hs256(&t, SECRET, NOW, want).map(|_| ());
            assert_eq!(got, with_want, "aud {aud}, iss {iss}");
            // Unexpected shapes refuse nothing where nothing is expected (RFC 7519: the
            // application decides what it checks).
            assert!(
                verify_hs256(&t, SECRET, NOW, Expected::default()).is_ok(),
                "aud {aud}, iss {iss}"
            );
        }
    }

    #[test]
    fn a_good_token_gives_its_payload() {
        let t = sign(HS256, &claims(NOW + 3600), SECRET);
        assert_eq!(
            verify_hs256(&t, SECRET, NOW, Expected::default()),
            Ok(claims(NOW + 3600))
        );
        // Inside the leeway either side.
        let t = sign(HS256, &claims(NOW - 30), SECRET);
        assert!(verify_hs256(&t, SECRET, NOW, Expected::default()).is_ok());
    }

    #[test]
    fn every_kind_of_bad_token_is_refused() {
        let good = sign(HS256, &claims(NOW + 3600), SECRET);
        let (h, rest) = good.split_once('.').unwrap();
        let (p, s) = rest.split_once('.').unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let forged_payload = b64.encode(claims(NOW + 3600).replace("a1", "b1"));
        let cases: Vec<(String, Refusal)> = vec![
            (
                sign(HS256, &claims(NOW + 3600), b"another secret"),
                Refusal::Signature,
            ),
            (format!("{h}.{forged_payload}.{s}"), Refusal::Signature),
            (format!("{h}.{p}."), Refusal::Signature),
            (
                format!("{h}.{p}"),
                Refusal::Malformed("not three dot-separated parts"),
            ),
            (
                format!("{good}.x"),
                Refusal::Malformed("not three dot-separated parts"),
            ),
            (
                String::new(),
                Refusal::Malformed("not three dot-separated parts"),
            ),
            (
                format!("{h}.{p}.{s}!"),
                Refusal::Malformed("signature is not base64url"),
            ),
            (
                format!("%%.{p}.{s}"),
                Refusal::Malformed("header is not base64url"),
            ),
            (
                sign(r#"{"alg":"none"}"#, &claims(NOW + 3600), b""),
                Refusal::Algorithm,
            ),
            (
                sign(r#"{"alg":"HS512"}"#, &claims(NOW + 3600), SECRET),
                Refusal::Algorithm,
            ),
            (
                sign(r#"{"alg":"RS256"}"#, &claims(NOW + 3600), SECRET),
                Refusal::Algorithm,
            ),
            (
                sign(r#"{"typ":"JWT"}"#, &claims(NOW + 3600), SECRET),
                Refusal::Algorithm,
            ),
            (
                sign("[]", &claims(NOW + 3600), SECRET),
                Refusal::Malformed("header is not a JSON object"),
            ),
            (
                sign(
                    r#"{"alg":"HS256","crit":null}"#,
                    &claims(NOW + 3600),
                    SECRET,
                ),
                Refusal::Malformed("crit header parameters are not supported"),
            ),
            (sign(HS256, &claims(NOW - 61), SECRET), Refusal::Expired),
            (
                sign(HS256, r#"{"sub":"x"}"#, SECRET),
                Refusal::Malformed("no exp claim"),
            ),
            (
                sign(HS256, r#"{"exp":"tomorrow"}"#, SECRET),
                Refusal::Malformed("payload is not a JSON object of claims"),
            ),
            (
                sign(HS256, "not json", SECRET),
                Refusal::Malformed("payload is not a JSON object of claims"),
            ),
            (
                sign(
                    HS256,
                    &format!(r#"{{"exp":{},"nbf":{}}}"#, NOW + 3600, NOW + 120),
                    SECRET,
                ),
                Refusal::NotYetValid,
            ),
        ];
        for (token, want) in cases {
            assert_eq!(
                verify_hs256(&token, SECRET, NOW, Expected::default()),
                Err(want),
                "{token}"
            );
        }
        // Every single-character change of a good token is refused.
        for i in 0..good.len() {
            let mut bytes = good.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(bytes).unwrap();
            assert!(
                verify_hs256(&t, SECRET, NOW, Expected::default()).is_err(),
                "changed at {i}: {t}"
            );
        }
    }

    #[test]
    fn the_bearer_token_comes_from_the_authorization_header() {
        let cases = [
            (
                r#"{"authorization":"Bearer abc.def.ghi"}"#,
                Some("abc.def.ghi"),
            ),
            // As PostgREST reads it: "Bearer" or "bearer", one space, the second field.
            (
                r#"{"authorization":"bearer abc.def.ghi"}"#,
                Some("abc.def.ghi"),
            ),
            // PostgREST's names are lowercase; another spelling is another header.
            (r#"{"Authorization":"Bearer abc.def.ghi"}"#, None),
            (
                r#"{"authorization":"Bearer abc.def.ghi extra"}"#,
                Some("abc.def.ghi"),
            ),
            (r#"{"authorization":"bearer  abc.def.ghi"}"#, None),
            (r#"{"authorization":" Bearer abc.def.ghi"}"#, None),
            (r#"{"authorization":"BEARER abc.def.ghi"}"#, None),
            (r#"{"authorization":"Bearer\tabc.def.ghi"}"#, None),
            (r#"{"authorization":"Basic dXNlcjpwYXNz"}"#, None),
            (r#"{"authorization":"Bearer"}"#, None),
            (r#"{"x-tenant-id":"t"}"#, None),
            (r#"{"authorization":42}"#, None),
            // A repeated member is no headers object PostgREST sends: no token.  Escapes are
            // decoded.
            (
                r#"{"authorization":"Bearer first","authorization":"Bearer second"}"#,
                None,
            ),
            (r#"["Bearer abc.def.ghi"]"#, None),
            (r#"{"authorization":"Bearer a\u002eb"}"#, Some("a.b")),
            (r#"{"x":{"authorization":"Bearer nested"}}"#, None),
            (r#"{"authorization":"Bearer abc.def.ghi""#, None),
            ("not json", None),
            ("[]", None),
        ];
        for (headers, want) in cases {
            assert_eq!(bearer_token(headers).as_deref(), want, "{headers}");
        }
    }
}
