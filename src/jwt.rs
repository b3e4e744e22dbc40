//! JWT verification for `tenancy.pre_request()`: when `tenancy.jwt_secret` is set, the claims come
//! from the request's own `Authorization: Bearer <JWT>` header (in `request.headers`), after its
//! HS256 signature is checked under that secret, instead of from `request.jwt.claims`.  Any role
//! can set those two request settings itself, but only the holder of the secret can sign a token:
//! a role with direct SQL access can no longer claim to be another user.
//!
//! Pure functions (no server), unit-tested below: the compact JWS form, `alg` HS256 only (never
//! `none`, never a key confusion), the signature compared in constant time (hmac's
//! `verify_slice`), `exp` required and `nbf` honoured, with 60 s of leeway for clock skew.
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY: i64 = 60;

/// Why a token was refused.  Never contains any part of the token.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Malformed(&'static str),
    Algorithm,
    Signature,
    Expired,
    NotYetValid,
    Audience,
    Issuer,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Malformed(what) => write!(f, "malformed token: {what}"),
            Refusal::Algorithm => f.write_str("the token's alg is not HS256"),
            Refusal::Signature => f.write_str("the signature does not match"),
            Refusal::Expired => f.write_str("the token has expired"),
            Refusal::NotYetValid => f.write_str("the token is not valid yet (nbf)"),
            Refusal::Audience => f.write_str("the token's aud is not tenancy.jwt_aud"),
            Refusal::Issuer => f.write_str("the token's iss is not tenancy.jwt_iss"),
        }
    }
}

#[derive(serde::Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<std::borrow::Cow<'a, str>>,
}

#[derive(serde::Deserialize)]
struct Times<'a> {
    exp: Option<f64>,
    nbf: Option<f64>,
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
/// service of the same secret usually lacks it, so we do not).
#[derive(Default, Clone, Copy)]
pub struct Expected<'a> {
    pub aud: Option<&'a str>,
    pub iss: Option<&'a str>,
}

/// The longest token `verify_hs256` reads (a larger one is refused before any decoding).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The bearer token of a PostgREST `request.headers` JSON object (`authorization` header,
/// scheme `Bearer`, any case), if there is one.
pub fn bearer_token(headers: &str) -> Option<String> {
    let map: std::collections::HashMap<String, serde_json::Value> =
        serde_json::from_str(headers).ok()?;
    let value = map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))?
        .1
        .as_str()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// Verify a compact HS256 JWS under `secret` at `now` (Unix seconds): its payload (the claims,
/// JSON text), or why not.
pub fn verify_hs256(
    token: &str,
    secret: &[u8],
    now: i64,
    expected: Expected,
) -> Result<String, Refusal> {
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
    if header.alg.as_deref() != Some("HS256") {
        return Err(Refusal::Algorithm);
    }
    let signature = b64
        .decode(signature)
        .map_err(|_| Refusal::Malformed("signature is not base64url"))?;
    // HMAC accepts a key of any length; were that ever to change, the token is refused, not a panic.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| Refusal::Signature)?;
    mac.update(signed);
    mac.verify_slice(&signature)
        .map_err(|_| Refusal::Signature)?;
    // Only a signed payload is parsed.
    let payload = b64
        .decode(payload)
        .map_err(|_| Refusal::Malformed("payload is not base64url"))?;
    let payload =
        String::from_utf8(payload).map_err(|_| Refusal::Malformed("payload is not UTF-8"))?;
    let times: Times = serde_json::from_str(&payload)
        .map_err(|_| Refusal::Malformed("payload is not a JSON object of claims"))?;
    match times.exp {
        None => return Err(Refusal::Malformed("no exp claim")),
        Some(exp) if (now - LEEWAY) as f64 >= exp => return Err(Refusal::Expired),
        _ => {}
    }
    if times.nbf.is_some_and(|nbf| ((now + LEEWAY) as f64) < nbf) {
        return Err(Refusal::NotYetValid);
    }
    if let Some(want) = expected.aud {
        let ok = match &times.aud {
            Some(Audience::One(a)) => a == want,
            Some(Audience::Many(list)) => list.iter().any(|a| a == want),
            Some(Audience::Other(_)) | None => false,
        };
        if !ok {
            return Err(Refusal::Audience);
        }
    }
    if let Some(want) = expected.iss {
        if !matches!(&times.iss, Some(Issuer::Is(iss)) if iss == want) {
            return Err(Refusal::Issuer);
        }
    }
    drop(times);
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            (
                r#"{"Authorization":"bearer  abc.def.ghi "}"#,
                Some("abc.def.ghi"),
            ),
            (r#"{"authorization":"Basic dXNlcjpwYXNz"}"#, None),
            (r#"{"authorization":"Bearer"}"#, None),
            (r#"{"x-tenant-id":"t"}"#, None),
            (r#"{"authorization":42}"#, None),
            ("not json", None),
            ("[]", None),
        ];
        for (headers, want) in cases {
            assert_eq!(bearer_token(headers).as_deref(), want, "{headers}");
        }
    }
}
